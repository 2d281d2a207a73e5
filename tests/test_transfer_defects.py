"""Export / import defects found from outside (issue 18): ImageFolder names that merged or
overwrote, class names that went in unchecked, CSV formula injection and paths with spaces,
unchunked IN lists, deeply nested JSON, and a full disk during an export."""

import csv
import errno
import io
import json
import shutil
import sqlite3
import unicodedata
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote

import pytest
from sqlalchemy import event, select

from app.cli import main
from core.transfer import class_folder
from core.transfer.class_folder import list_class_folder
from services.database import open_database
from services.errors import UserError
from services.ingest.ingest import ingest
from services.labeling.classes import add_label_class, rename_class
from services.output_files import write_atomically
from services.projects import get_project
from services.transfer.export import export_image_folder, labeled_images, to_coco, to_csv
from services.transfer.imports import import_file
from storage import queries
from storage.items import item_queries
from storage.labels import label_queries
from storage.models import ItemStatus, LabelClass, Project
from storage.teams import review_queries
from tests.images import write_image
from tests.labels_by_name import NewLabel, record_annotations

PATHS = (
    "plain/1.png",
    "plain/2.png",
    "plain/3.png",
    "a/b__c.png",
    "a__b/c.png",
    " lead.png",
    "trail .png",
    "=cmd.png",
    "+x.png",
    "-y.png",
    "@z.png",
    "'=q.png",
    "'plain.png",
)


@pytest.fixture
def project(backend_settings, tmp_path):
    """Projects "default" and "b" over the images at PATHS, no classes; on SQLite and on PostgreSQL."""
    root = tmp_path / "images"
    for seed, path in enumerate(PATHS):
        write_image(root / path, seed)
    with open_database(backend_settings) as db:
        for name in ("default", "b"):
            ingest(db, backend_settings, source=root, project=name)
        yield db


def _ids(db, project_name="default"):
    with db.reading() as session:
        return {
            path: item_id for item_id, path in item_queries.ok_item_paths(session, get_project(db, project_name).id)
        }


def _current(db, project_name):
    return {image.path: sorted(image.labels) for image in labeled_images(db, project_name)}


def _class_names(db, project_name="default"):
    with db.reading() as session:
        return sorted(
            c.name
            for c in label_queries.label_classes(session, get_project(db, project_name).id, include_archived=True)
        )


def _unchecked_classes(db, names, project_name="default"):
    """Classes added straight to the database, as an older version let any name in."""
    with db.writing() as session:
        for name in names:
            queries.add_label_class(session, get_project(db, project_name).id, name)


def _multi_label(db, project_name="default"):
    with db.writing() as session:
        session.scalar(select(Project).where(Project.name == project_name)).multi_label = True


def _label(db, labels):
    ids = _ids(db)
    record_annotations(db, [NewLabel(ids[path], names) for path, names in labels.items()], annotator="ann")


# ----- ImageFolder ---------------------------------------------------------------------


def test_image_folder_keeps_look_alike_class_names_apart_and_reads_back(project, tmp_path):
    db = project
    names = ["a/b", "a_b", "a\\b", "50%", "a%2Fb"]
    for name in names:
        add_label_class(db, project=get_project(db, "default"), name=name)
    labels = {path: [names[n % len(names)]] for n, path in enumerate(sorted(_ids(db)))}
    _label(db, labels)
    out = tmp_path / "export"

    assert export_image_folder(db, "default", labeled_images(db, "default"), out) == len(labels)

    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(folders) == len(names)  # was 4: a/b and a_b both wrote into a_b
    assert sorted(unquote(folder) for folder in folders) == sorted(names)  # the documented encoding
    paths, read_labels, classes = list_class_folder(out)
    assert classes == sorted(names)
    files = {path.name: path for path in out.rglob("*.png")}
    assert sorted(unquote(name) for name in files) == sorted(labels)
    assert {unquote(path.name): [classes[label]] for path, label in zip(paths, read_labels)} == labels


def test_image_folder_file_names_never_collide(project, tmp_path):
    db = project
    add_label_class(db, project=get_project(db, "default"), name="cat")
    _label(db, {"a/b__c.png": ["cat"], "a__b/c.png": ["cat"]})
    out = tmp_path / "export"

    assert export_image_folder(db, "default", labeled_images(db, "default"), out) == 2

    written = sorted((out / "cat").iterdir())
    assert len(written) == 2  # was 1: a__b__c.png written twice, the second over the first
    root = Path(get_project(db, "default").root_path)
    assert sorted(p.read_bytes() for p in written) == sorted(
        (root / p).read_bytes() for p in ("a/b__c.png", "a__b/c.png")
    )


def test_image_folder_export_of_names_an_older_version_let_in(project, tmp_path):
    db = project
    nfc, nfd = "café", unicodedata.normalize("NFD", "café")
    names = [
        "",
        "..",
        ".hidden",
        "x\ny",
        "\u202eevil",
        "猫" * 200,
        "Cat",
        "cat",
        "CAT",
        "con",
        "a;b",
        "tab\there",
        "trailing.",
        nfc,
        nfd,
        "straße",
        "STRASSE",
    ]
    _unchecked_classes(db, names)
    _multi_label(db)
    _label(db, {"plain/1.png": names})
    out = tmp_path / "export"

    assert export_image_folder(db, "default", labeled_images(db, "default"), out) == len(names)

    folders = [p.name for p in out.iterdir() if p.is_dir()]
    assert len(folders) == len(names)
    for form in ("NFC", "NFD"):  # names stay apart on case-insensitive and normalising file systems
        assert len({unicodedata.normalize(form, f).casefold() for f in folders}) == len(names)
    assert all(0 < len(f.encode()) <= 255 and not f.startswith(".") and not f.endswith((".", " ")) for f in folders)
    assert all(unicodedata.category(c)[0] != "C" and c not in "/\\:" for f in folders for c in f)
    assert "con" not in {f.lower() for f in folders}
    paths, read_labels, classes = list_class_folder(out)
    assert classes == sorted(names)
    assert sorted(classes[label] for label in read_labels) == sorted(names)
    assert sorted(json.loads((out / class_folder.CLASS_NAMES_FILE).read_text(encoding="utf-8")).values()) == sorted(
        names
    )


# ----- class names ---------------------------------------------------------------------

BAD_NAMES = {
    "": "empty",
    "   ": "empty",
    "x\x00y": "control character",
    "x\ny": "control character",
    "\u202eabc": "direction",
    "a\u2066b": "direction",
    "x\u2028y": "line",
    "a" * 201: "200 characters",
    "a;b": "';'",
}


def _engine(db, project_name="default"):
    """What services.labeling.classes needs of a project engine."""
    project = get_project(db, project_name)
    return SimpleNamespace(db=db, project_id=project.id, project_name=project_name, reload_classes=lambda: None)


@pytest.mark.parametrize("name", list(BAD_NAMES), ids=lambda name: repr(name)[:20])
def test_a_class_name_that_breaks_a_rule_is_refused_naming_it_and_the_rule(project, name):
    db = project
    add_label_class(db, project=get_project(db, "default"), name="dog")
    dog = next(iter(_class_ids(db)))
    rule = BAD_NAMES[name]
    with pytest.raises(UserError, match=rule) as added:
        add_label_class(db, project=get_project(db, "default"), name=name)
    with pytest.raises(UserError, match=rule) as renamed:
        rename_class(_engine(db), dog, name)
    if name.strip():
        assert repr(name)[:25] in str(added.value) and repr(name)[:25] in str(renamed.value)
    assert _class_names(db) == ["dog"]


def _class_ids(db, project_name="default"):
    with db.reading() as session:
        return {c.id: c.name for c in label_queries.label_classes(session, get_project(db, project_name).id)}


def test_class_names_are_unique_regardless_of_case_and_unicode_form(project):
    db = project
    project_row = get_project(db, "default")
    add_label_class(db, project=project_row, name="cat")
    add_label_class(db, project=project_row, name=unicodedata.normalize("NFD", "café"))
    add_label_class(db, project=project_row, name="dog")
    assert _class_names(db) == sorted(["cat", "café", "dog"])  # stored in NFC

    for twin, existing in (("Cat", "cat"), (" CAT ", "cat"), ("CAFÉ", "café"), ("café", "café")):
        with pytest.raises(UserError, match=f"'{existing}'"):
            add_label_class(db, project=project_row, name=twin)
    ids = {name: class_id for class_id, name in _class_ids(db).items()}
    with pytest.raises(UserError, match="'cat'"):
        rename_class(_engine(db), ids["dog"], "Cat")
    rename_class(_engine(db), ids["cat"], "Cat")  # a class may change its own case
    assert _class_names(db) == sorted(["Cat", "café", "dog"])


def test_an_import_reports_rows_whose_class_names_break_a_rule_and_imports_the_rest(project):
    db = project
    add_label_class(db, project=get_project(db, "default"), name="cat")
    paths = sorted(p for p in _ids(db) if p.startswith("plain/")) + [
        "a/b__c.png",
        "a__b/c.png",
        "@z.png",
        "-y.png",
        "+x.png",
    ]
    rows = [
        (paths[0], "good"),
        (paths[1], "x\u202ey"),
        (paths[2], "Cat"),
        (paths[3], "a" * 201),
        (paths[4], "two\nlines"),
        (paths[5], "cat"),
        (paths[6], "Dog"),
        (paths[6 + 1], "dog"),
    ]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([("path", "labels"), *rows])

    report = import_file(db, "default", buffer.getvalue().encode(), file_name="x.csv", create_classes=True)

    assert report.imported == 3
    assert _current(db, "default") == {paths[0]: ["good"], paths[5]: ["cat"], paths[6]: ["Dog"]}
    assert _class_names(db) == ["Dog", "cat", "good"]
    assert report.created_classes == ["Dog", "good"]
    bad = {(b.line, b.path, b.name) for b in report.bad_names}
    assert bad == {
        (3, paths[1], "x\u202ey"),
        (4, paths[2], "Cat"),
        (5, paths[3], "a" * 201),
        (6, paths[4], "two\nlines"),
        (10, paths[7], "dog"),
    }
    messages = {b.name: b.message for b in report.bad_names}
    assert "direction" in messages["x\u202ey"] and "'cat'" in messages["Cat"] and "'Dog'" in messages["dog"]
    assert messages["two\nlines"].startswith("line 6: ")


def test_an_import_matches_a_class_name_in_another_unicode_form_and_creates_it_once(project):
    db = project
    nfc, nfd = "café", unicodedata.normalize("NFD", "café")
    add_label_class(db, project=get_project(db, "default"), name="thé")
    text = f"path,labels\nplain/1.png,{nfd}\nplain/2.png,{nfc}\nplain/3.png,{unicodedata.normalize('NFD', 'thé')}\n"

    report = import_file(db, "default", text.encode(), file_name="x.csv", create_classes=True)

    assert (report.imported, report.created_classes, report.bad_names) == (3, [nfc], [])
    assert _class_names(db) == [nfc, "thé"]
    assert _current(db, "default") == {"plain/1.png": [nfc], "plain/2.png": [nfc], "plain/3.png": ["thé"]}


def test_a_coco_category_with_the_csv_separator_is_reported_not_created(project):
    db = project
    coco = {
        "images": [{"id": 1, "file_name": "plain/1.png"}, {"id": 2, "file_name": "plain/2.png"}],
        "categories": [{"id": 1, "name": "a;b"}, {"id": 2, "name": "ok"}],
        "annotations": [{"image_id": 1, "category_id": 1}, {"image_id": 2, "category_id": 2}],
    }

    report = import_file(db, "default", json.dumps(coco, indent=1).encode(), file_name="c.json", create_classes=True)

    assert (report.imported, [(b.path, b.name) for b in report.bad_names]) == (1, [("plain/1.png", "a;b")])
    assert _current(db, "default") == {"plain/2.png": ["ok"]}


# ----- CSV ---------------------------------------------------------------------------------


def test_csv_export_defuses_formulas_and_round_trips_exactly(project):
    db = project
    for name in ("-1", "@home", "=SUM(1+1)", "cat", "'quoted"):
        add_label_class(db, project=get_project(db, "default"), name=name)
    labels = {
        "=cmd.png": ["-1"],
        "+x.png": ["@home"],
        "-y.png": ["=SUM(1+1)"],
        "@z.png": ["cat"],
        "'=q.png": ["cat"],
        "'plain.png": ["'quoted"],
        " lead.png": ["cat"],
        "trail .png": ["cat"],
        "plain/1.png": ["cat"],
    }
    _label(db, labels)

    text = to_csv(labeled_images(db, "default"))

    cells = [cell for row in list(csv.reader(io.StringIO(text)))[1:] for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "'=cmd.png" in cells and "''=q.png" in cells and "'plain.png" in cells
    report = import_file(db, "b", text.encode(), file_name="labels.csv", create_classes=True)
    assert report.unknown == [] and report.bad_names == []
    assert _current(db, "b") == labels  # the paths with a leading or trailing space kept their labels


def test_a_path_that_starts_with_a_space_keeps_its_label_through_csv(project):
    db = project
    add_label_class(db, project=get_project(db, "default"), name="cat")
    labels = {" lead.png": ["cat"], "trail .png": ["cat"]}
    _label(db, labels)

    report = import_file(
        db, "b", to_csv(labeled_images(db, "default")).encode(), file_name="x.csv", create_classes=True
    )

    assert report.unknown == []  # was: " lead.png" read back as "lead.png", not an image of the project
    assert _current(db, "b") == labels


def test_a_csv_written_by_hand_with_spaces_after_the_commas_still_matches(project):
    db = project
    add_label_class(db, project=get_project(db, "default"), name="cat")
    report = import_file(db, "default", b"path, labels\n plain/1.png, cat\n", file_name="x.csv", create_classes=False)
    assert (report.imported, report.unknown) == (1, [])


# ----- large and deep inputs ----------------------------------------------------------------


@pytest.mark.slow
def test_exports_and_imports_stay_under_sqlite_bound_parameter_limits(db):
    """SQLite builds before 3.32 allow 999 bound parameters per statement."""
    with db.writing() as session:
        projects = [Project(name=name, root_path="/nowhere") for name in ("default", "b")]
        session.add_all(projects)
        session.flush()
        for project_row in projects:
            queries.insert_items(
                session,
                [
                    dict(
                        project_id=project_row.id,
                        path=f"img/{n:05d}.png",
                        sha256=f"{n:064x}",
                        size_bytes=1,
                        mtime_ns=1,
                        width=8,
                        height=8,
                        format="PNG",
                        status=ItemStatus.OK,
                    )
                    for n in range(1100)
                ],
            )
        session.add(LabelClass(project_id=projects[0].id, name="cat"))
    ids = _ids(db)
    record_annotations(db, [NewLabel(item_id, ["cat"]) for item_id in ids.values()], annotator="ann")
    event.listen(
        db.engine, "connect", lambda connection, _: connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    )
    db.engine.dispose()

    images = labeled_images(db, "default")
    assert len(images) == 1100
    assert len(json.loads(to_coco(db, "default", images))["images"]) == 1100
    report = import_file(db, "b", to_csv(images).encode(), file_name="x.csv", create_classes=True)
    assert report.imported == 1100
    with db.reading() as session:  # the other reads of many items chunk their IN lists too
        project_id = queries.find_project(session, "default").id
        assert len(item_queries.paths_by_id(session, project_id, ids.values())) == 1100
        assert len(label_queries.current_labels_of(session, ids.values())) == 1100
        assert len(review_queries.opinions(session, project_id=project_id, item_ids=list(ids.values()))) == 1100


@pytest.mark.parametrize("fmt", ["label-studio", "coco"])
def test_deeply_nested_json_is_refused_naming_the_file(project, fmt):
    depth = 100_000
    text = "[" * depth + "]" * depth if fmt == "label-studio" else '{"images": ' + "[" * depth + "]" * depth + "}"
    with pytest.raises(UserError, match=r"^deep.json, line 1: .*nest.*deeper than"):
        import_file(project, "default", text.encode(), file_name="deep.json", fmt=fmt, create_classes=True)


def test_a_deeply_nested_class_names_file_is_refused_naming_it(tmp_path):
    folder = tmp_path / "folder"
    write_image(folder / "cat" / "1.png", 0)
    listing = folder / class_folder.CLASS_NAMES_FILE
    listing.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=rf"^{listing} is not a JSON object .*delete it"):  # was a RecursionError
        list_class_folder(folder)


# ----- a full disk ----------------------------------------------------------------------------


def _disk_full_after(count, write, *, target_argument):
    """``write`` that works ``count`` times, then writes part of its file (argument ``target_argument``)
    and fails as on a full disk."""
    done = []

    def failing(*args, **kwargs):
        if len(done) == count:
            target = Path(args[target_argument])
            target.write_bytes(b"part of it")
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        done.append(args)
        return write(*args, **kwargs)

    return failing


@pytest.mark.slow
@pytest.mark.parametrize("existing", [False, True], ids=["new folder", "empty folder"])
def test_a_full_disk_during_an_image_folder_export_leaves_nothing_behind(project, tmp_path, monkeypatch, existing):
    db = project
    add_label_class(db, project=get_project(db, "default"), name="cat")
    _label(db, {path: ["cat"] for path in PATHS[:5]})
    out = tmp_path / "exports" / "out"
    if existing:
        out.mkdir(parents=True)
    monkeypatch.setattr(shutil, "copy2", _disk_full_after(2, shutil.copy2, target_argument=1))

    with pytest.raises(UserError) as error:
        export_image_folder(db, "default", labeled_images(db, "default"), out)

    message = str(error.value)
    assert str(out) in message and "No space left" in message and "free space" in message
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "exports").rglob("*")) == (
        [Path("exports/out")] if existing else []
    )


def test_a_full_disk_while_writing_an_export_file_keeps_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / "labels.csv"
    out.write_text("old\n")
    monkeypatch.setattr(Path, "write_text", _disk_full_after(0, Path.write_text, target_argument=0))

    with pytest.raises(UserError) as error:
        write_atomically(out, "path,labels\n" * 1000)

    assert str(out) in str(error.value) and "free space" in str(error.value)
    assert [p.name for p in tmp_path.iterdir()] == ["labels.csv"] and out.read_text() == "old\n"


def test_cli_export_on_a_full_disk_says_so_without_a_traceback(
    project, backend_settings, tmp_path, monkeypatch, capsys
):
    db = project
    add_label_class(db, project=get_project(db, "default"), name="cat")
    _label(db, {"plain/1.png": ["cat"]})
    monkeypatch.setenv("BANANA_HOME", str(backend_settings.home))
    monkeypatch.setenv("BANANA_DATABASE_URL", backend_settings.database_url)
    for variable in ("BANANA_CONFIG", "BANANA_PROJECT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(Path, "write_text", _disk_full_after(0, Path.write_text, target_argument=0))
    out = tmp_path / "out" / "labels.csv"

    assert main(["export", "--format", "csv", "--out", str(out)]) == 1

    assert f"error: could not write {out}" in capsys.readouterr().err
    assert list((tmp_path / "out").iterdir()) == []


def test_cli_import_lists_the_lines_whose_class_names_break_a_rule(
    project, backend_settings, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("BANANA_HOME", str(backend_settings.home))
    monkeypatch.setenv("BANANA_DATABASE_URL", backend_settings.database_url)
    for variable in ("BANANA_CONFIG", "BANANA_PROJECT"):
        monkeypatch.delenv(variable, raising=False)
    labels = tmp_path / "labels.csv"
    labels.write_text('path,labels\nplain/1.png,cat\nplain/2.png,"two\nlines"\n', encoding="utf-8")

    assert main(["import-labels", str(labels)]) == 0

    printed = capsys.readouterr().out
    assert "imported 1 labels" in printed and "1 naming a class whose name breaks a rule" in printed
    assert "  line 3: plain/2.png skipped: class name 'two\\nlines' contains a control character (U+000A)" in printed
