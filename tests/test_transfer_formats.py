"""Export / import formats: lossless round trips (CSV, Label Studio, COCO), idempotent re-import,
Label Studio exports as Label Studio writes them, and malformed files that change nothing."""

import json
import random
import shutil

import pytest
from sqlalchemy import func, select

from app.cli import main
from services.database import open_database
from services.errors import UserError
from services.ingest.ingest import ingest
from services.labeling.classes import add_label_class
from services.projects import get_project
from services.transfer.export import labeled_images, to_coco, to_csv, to_label_studio
from services.transfer.imports import import_file
from storage.items import item_queries
from storage.labels import label_queries
from storage.models import Annotation, Project
from tests.labeling_project import CLASSES, PER_CLASS, SAMPLE_IMAGES, true_class
from tests.labels_by_name import NewLabel, record_annotation, record_annotations

EXPORTS = {
    "csv": lambda db, project: to_csv(labeled_images(db, project)),
    "label-studio": lambda db, project: to_label_studio(db, project, labeled_images(db, project)),
    "label-studio-image-only": lambda db, project: json.dumps(
        [
            dict(task, data={"image": task["data"]["image"]})
            for task in json.loads(to_label_studio(db, project, labeled_images(db, project)))
        ]
    ),
    "coco": lambda db, project: to_coco(db, project, labeled_images(db, project)),
}
SUFFIX = {"csv": ".csv", "label-studio": ".json", "label-studio-image-only": ".json", "coco": ".json"}


@pytest.fixture
def two_projects(backend_settings, tmp_path):
    """Project "default" (24 sample images, 4 classes) and project "b" over the same images, no
    classes; on SQLite and on PostgreSQL."""
    images = tmp_path / "images"
    for name in CLASSES:
        (images / name).mkdir(parents=True)
        for source in sorted((SAMPLE_IMAGES / name).iterdir())[:PER_CLASS]:
            shutil.copy(source, images / name / source.name)
    with open_database(backend_settings) as db:
        for project in ("default", "b"):
            ingest(db, backend_settings, source=images, project=project)
        for name in CLASSES:
            add_label_class(db, project=get_project(db, "default"), name=name)
        yield db, images


def _current(db, project_name):
    """Path -> sorted class names of every item whose current label names a class."""
    return {image.path: sorted(image.labels) for image in labeled_images(db, project_name)}


def _state(db, project_name):
    """Everything an import may change: the annotation row count and the current labels."""
    project = get_project(db, project_name)
    with db.reading() as session:
        rows = session.scalar(select(func.count(Annotation.id)))
        classes = sorted(c.name for c in label_queries.label_classes(session, project.id, include_archived=True))
    return rows, classes, _current(db, project_name)


def _ids(db, project_name):
    project = get_project(db, project_name)
    with db.reading() as session:
        return {path: item_id for item_id, path in item_queries.ok_item_paths(session, project.id)}


def _set_multi_label(db, *names):
    with db.writing() as session:
        for project in session.scalars(select(Project).where(Project.name.in_(names))):
            project.multi_label = True


def _label_project_a(db, *, multi_label, seed=0):
    """Label 16 of the 24 images (some several classes when multi-label), correct one, clear one."""
    rng = random.Random(seed)
    ids = _ids(db, "default")
    paths = sorted(ids)[:16]
    labels = [
        NewLabel(ids[p], sorted({true_class(p), *(rng.sample(CLASSES, 2) if multi_label and i % 3 == 0 else ())}))
        for i, p in enumerate(paths)
    ]
    first = record_annotations(db, labels, annotator="ann")
    record_annotation(db, item_id=ids[paths[0]], class_names=["truck"], annotator="bob", supersedes_id=first[0])
    record_annotation(db, item_id=ids[paths[1]], class_names=[], annotator="bob", supersedes_id=first[1])


@pytest.mark.parametrize("multi_label", [False, True], ids=["single-label", "multi-label"])
@pytest.mark.parametrize("fmt", list(EXPORTS))
def test_export_then_import_into_a_fresh_project_gives_the_same_labels(two_projects, fmt, multi_label):
    db, _ = two_projects
    if multi_label:
        _set_multi_label(db, "default", "b")
    _label_project_a(db, multi_label=multi_label)
    expected = _current(db, "default")
    assert len(expected) == 15 and any(len(v) > 1 for v in expected.values()) == multi_label

    text = EXPORTS[fmt](db, "default").encode()
    report = import_file(db, "b", text, file_name=f"labels{SUFFIX[fmt]}", create_classes=True)

    assert _current(db, "b") == expected
    assert (report.imported, report.unchanged, report.unknown) == (15, 0, [])
    assert sorted(report.created_classes) == sorted({n for names in expected.values() for n in names})
    before = _state(db, "b")
    again = import_file(db, "b", text, file_name=f"labels{SUFFIX[fmt]}", create_classes=False)
    assert (again.imported, again.unchanged) == (0, 15)
    assert _state(db, "b") == before  # re-import is idempotent: no new rows


@pytest.mark.slow
@pytest.mark.parametrize("fmt", list(EXPORTS))
def test_import_supersedes_different_labels_and_records_source_import(two_projects, fmt):
    db, _ = two_projects
    _label_project_a(db, multi_label=False)
    ids = _ids(db, "default")
    path = sorted(_current(db, "default"))[3]
    text = EXPORTS[fmt](db, "default").encode()
    record_annotation(
        db, item_id=ids[path], class_names=["frog" if true_class(path) != "frog" else "cat"], annotator="ann"
    )
    changed = _current(db, "default")

    report = import_file(db, "default", text, file_name=f"x{SUFFIX[fmt]}", create_classes=False, annotator="ls-team")

    assert report.imported == 1 and report.unchanged == len(changed) - 1
    after = {i.path: i for i in labeled_images(db, "default")}
    assert (after[path].source, after[path].annotator) == ("import", "ls-team")
    assert _current(db, "default") == {**changed, path: after[path].labels}


def _ls_task(line_image, annotations, **extra):
    return {"id": 1, "data": {"image": line_image}, "annotations": annotations, "predictions": [], **extra}


def _ls_annotation(choices, *, cancelled=False, updated="2026-01-01T10:00:00.000000Z", number=1):
    return {
        "id": number,
        "was_cancelled": cancelled,
        "created_at": "2026-01-01T09:00:00.000000Z",
        "updated_at": updated,
        "result": [{"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": choices}}],
    }


def test_label_studio_export_maps_image_references_and_takes_the_newest_kept_annotation(two_projects):
    db, images = two_projects
    paths = sorted(_ids(db, "default"))
    tasks = [
        _ls_task(f"/data/local-files/?d={images.as_posix().lstrip('/')}/{paths[0]}", [_ls_annotation(["cat"])]),
        _ls_task(
            f"{images}/{paths[1]}",
            [
                _ls_annotation(["frog"], updated="2026-01-02T00:00:00Z", number=1),
                _ls_annotation(["cat"], updated="2026-01-01T00:00:00Z", number=2),
            ],
        ),
        _ls_task(
            f"https://images.example.com/bucket/{paths[2]}",
            [_ls_annotation(["truck"]), _ls_annotation(["cat"], cancelled=True, updated="2027-01-01T00:00:00Z")],
        ),
        _ls_task(f"/data/local-files/?d=elsewhere/{paths[3].replace('/', '%2F')}", []),  # no annotation yet
        _ls_task("/data/upload/3/5f2a1b-unknown.jpg", [_ls_annotation(["cat"])]),
    ]
    tasks[3]["predictions"] = [{"model_version": "some-model", "result": _ls_annotation(["airplane"])["result"]}]
    text = json.dumps(tasks, indent=2).encode()

    report = import_file(db, "default", text, file_name="project-1.json", create_classes=False)

    assert _current(db, "default") == {paths[0]: ["cat"], paths[1]: ["frog"], paths[2]: ["truck"]}
    assert (report.imported, report.unlabeled) == (3, 1)  # another model's prediction is not a label
    lines = text.decode().splitlines()
    assert [(u.path, lines[u.line - 1].strip()) for u in report.unknown] == [("/data/upload/3/5f2a1b-unknown.jpg", "{")]


MALFORMED = {
    "labels.csv": (
        "path,labels,annotator\n" + "cat/{0},cat,ann\n" * 5 + "cat/{0},cat,ann,extra\n",
        "line 7",
        "3 fields|4 fields",
    ),
    "nohead.csv": ("cat/{0},cat\ncat/{0},cat\n", "line 1", "header"),
    "syntax.json": (
        '[\n {"data": {"image": "cat/{0}"},\n  "annotations": []},\n {"data": \n}\n]\n',
        "line 5",
        "not valid JSON",
    ),
    "notask.json": (
        '[\n {"data": {"image": "cat/{0}"}, "annotations": [{"result": [{"value": {"choices": ["cat"]}}]}]},'
        '\n\n {"id": 7,\n  "data": {"text": "no image"}}\n]\n',
        "line 4",
        "no data.image",
    ),
    "choices.json": (
        '[\n {"data": {"image": "cat/{0}"},\n  "annotations": [{"result": [{"value": {"choices": "cat"}}]}]}\n]',
        "line 2",
        "choices must be a list",
    ),
    "coco.json": (
        '{"images": [\n {"id": 1, "file_name": "cat/{0}"},\n {"id": 2}\n],\n "categories": [], "annotations": []}',
        "line 3",
        "file_name",
    ),
    "single.csv": ("path,labels\ncat/{0},cat\ncat/{0},cat;frog\n", "line 3", "single-label"),
    "twice.csv": ("path,labels\ncat/{0},cat\ncat/{0},frog\n", "line 3", "line 2"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_file_names_the_line_and_changes_nothing(two_projects, name):
    db, _ = two_projects
    _label_project_a(db, multi_label=False)
    first_cat = sorted(p for p in _ids(db, "default") if p.startswith("cat/"))[-1].split("/")[1]
    text, line, problem = MALFORMED[name]
    text = text.replace("{0}", first_cat)
    before = _state(db, "default")

    with pytest.raises(UserError) as error:
        import_file(db, "default", text.encode(), file_name=name, create_classes=True)

    message = str(error.value)
    assert message.startswith(f"{name}, {line}"), message
    assert any(part in message for part in problem.split("|")), message
    assert _state(db, "default") == before


def test_unknown_classes_are_refused_without_new_classes_and_nothing_changes(two_projects):
    db, _ = two_projects
    paths = sorted(_ids(db, "default"))
    before = _state(db, "default")
    text = f"path,labels\n{paths[0]},cat\n{paths[1]},frog\nnot/there.png,boat\n{paths[2]},boat\n"

    with pytest.raises(UserError, match=r"^x.csv, line 5: unknown class boat"):
        import_file(db, "default", text.encode(), file_name="x.csv", create_classes=False)
    assert _state(db, "default") == before


def test_unknown_paths_are_reported_per_line_and_skipped(two_projects):
    db, _ = two_projects
    paths = sorted(_ids(db, "default"))
    text = f"path,labels\n{paths[0]},cat\nnot/there.png,cat\n\n{paths[1]},frog\nalso/missing.jpg,dog\n"

    report = import_file(db, "default", text.encode(), file_name="x.csv", create_classes=False)

    assert [(u.line, u.path) for u in report.unknown] == [(3, "not/there.png"), (6, "also/missing.jpg")]
    assert _current(db, "default") == {paths[0]: ["cat"], paths[1]: ["frog"]}


def test_cli_export_and_import_labels_round_trip(two_projects, backend_settings, tmp_path, monkeypatch, capsys):
    db, _ = two_projects
    monkeypatch.setenv("BANANA_HOME", str(backend_settings.home))
    monkeypatch.setenv("BANANA_DATABASE_URL", backend_settings.database_url)
    for variable in ("BANANA_CONFIG", "BANANA_PROJECT"):
        monkeypatch.delenv(variable, raising=False)
    _label_project_a(db, multi_label=False)
    out = tmp_path / "export" / "tasks.json"

    assert main(["export", "--format", "label-studio", "--out", str(out)]) == 0
    assert "wrote 15 labeled images" in capsys.readouterr().out
    assert '<Choice value="frog"/>' in out.with_suffix(".xml").read_text()
    assert main(["import-labels", str(out), "--project", "b", "--no-new-classes"]) == 1
    assert "unknown class" in capsys.readouterr().err
    assert main(["import-labels", str(out), "--project", "b", "--annotator", "team"]) == 0
    printed = capsys.readouterr().out
    assert "imported 15 labels" in printed and "new classes: " in printed
    assert _current(db, "b") == _current(db, "default")

    folder = tmp_path / "folder"
    assert main(["export", "--format", "imagefolder", "--out", str(folder), "--files", "hardlink"]) == 0
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg"))
    assert written == sorted(
        f"{labels[0]}/{path.replace('/', '%2F')}" for path, labels in _current(db, "default").items()
    )
    assert all(p.stat().st_nlink == 2 for p in folder.rglob("*.jpg"))
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == [".classes.json"]


def test_bytes_that_are_not_utf8_name_the_line_and_an_archived_class_is_refused(two_projects):
    db, _ = two_projects
    path = sorted(_ids(db, "default"))[0]
    before = _state(db, "default")
    with pytest.raises(UserError, match=r"^x.csv, line 3: not UTF-8"):
        import_file(
            db,
            "default",
            f"path,labels\n{path},cat\n".encode() + b"caf\xe9.png,cat\n",
            file_name="x.csv",
            create_classes=True,
        )
    project = get_project(db, "default")
    with db.writing() as session:
        label_queries.set_class_archived(session, label_queries.label_classes(session, project.id)[1].id, True)
    archived = CLASSES[1]  # classes were added in this order
    with pytest.raises(UserError, match=rf"^x.csv, line 2: class '{archived}' is archived"):
        import_file(db, "default", f"path,labels\n{path},{archived}\n".encode(), file_name="x.csv", create_classes=True)
    assert _state(db, "default") == before


def test_an_import_records_the_rows_annotator_else_who_imported_it(two_projects):
    db, _ = two_projects
    first, second = sorted(_ids(db, "default"))[:2]
    text = f"path,labels,annotator\n{first},{true_class(first)},ls-ann\n{second},{true_class(second)},\n"

    report = import_file(db, "default", text.encode(), file_name="x.csv", create_classes=True, importer="adam")

    assert report.imported == 2
    after = {i.path: i.annotator for i in labeled_images(db, "default")}
    assert (after[first], after[second]) == ("ls-ann", "adam")
