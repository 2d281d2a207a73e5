"""Label Studio exports of images that were uploaded to Label Studio: their references are
/data/upload/<project id>/<8 hex digits>-<file name>, so the import matches the file name against
the items' file names, applying a unique match and reporting (never guessing) a shared one."""

import json
import shutil

import pytest

from app.cli import main
from services.database import open_database
from services.ingest.ingest import ingest
from services.transfer import label_studio
from services.transfer.export import labeled_images
from services.transfer.imports import import_file
from tests.labeling_project import SAMPLE_IMAGES

# Item path -> the sample image copied there. 4850.jpg is in two folders, as in CIFAR-like trees.
ITEMS = {
    "cat/4850.jpg": "cat/4850.jpg",
    "frog/4850.jpg": "frog/4850.jpg",
    "cat/4851.jpg": "cat/4851.jpg",
    "truck/t-1.jpg": "truck/4850.jpg",
    "holiday/IMG 0001.jpg": "airplane/4850.jpg",
    "holiday/été.jpg": "airplane/4851.jpg",
    "upload/3/ab12cd34-4852.jpg": "cat/4852.jpg",  # a copy of Label Studio's media folder
}


@pytest.fixture
def project(settings, tmp_path):
    images = tmp_path / "images"
    for path, source in ITEMS.items():
        (images / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE_IMAGES / source, images / path)
    with open_database(settings) as db:
        ingest(db, settings, source=images, project="default")
        yield db


def _task(image, choices):
    annotations = [
        {
            "id": 1,
            "was_cancelled": False,
            "created_at": "2026-01-01T09:00:00Z",
            "result": [{"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": choices}}],
        }
    ]
    return {
        "id": 1,
        "data": {"image": image},
        "annotations": annotations,
        "predictions": [],
        "file_upload": image.rsplit("/", 1)[-1],
    }


def _current(db):
    return {image.path: image.labels for image in labeled_images(db, "default")}


def test_uploaded_file_name_strips_label_studios_prefix_only_from_upload_paths():
    assert label_studio.uploaded_file_name("/data/upload/3/8f3e2a1b-4921.jpg") == "4921.jpg"
    assert label_studio.uploaded_file_name("data/upload/3/8f3e2a1b-a-b-c.png") == "a-b-c.png"  # image_path of a URL
    assert label_studio.uploaded_file_name("/ls/data/upload/12/DEADBEEF-x%20y.jpg") == "x_y.jpg"
    for other in (
        "/data/upload/3/5f2a1b-4921.jpg",
        "/data/upload/8f3e2a1b-4921.jpg",
        "cat/8f3e2a1b-4921.jpg",
        "/data/local-files/?d=cat/4921.jpg",
        "/data/upload/3/8f3e2a1b-4921.jpg/x",
    ):
        assert label_studio.uploaded_file_name(other) is None, other
    assert label_studio.stored_file_name("  john's portrait (2004).jpg") == "johns_portrait_2004.jpg"


def test_uploads_import_onto_the_one_item_with_that_file_name_and_a_shared_name_is_reported(project):
    db = project
    tasks = [
        _task("/data/upload/3/8f3e2a1b-4851.jpg", ["cat"]),
        _task("http://localhost:8080/data/upload/3/0a1b2c3d-IMG_0001.jpg", ["airplane"]),  # "IMG 0001.jpg" as stored
        _task("/data/upload/12/ffffffff-t-1.jpg", ["truck"]),
        _task("/data/upload/3/12345678-%C3%A9t%C3%A9.jpg", ["airplane"]),
        _task("/data/upload/3/9a8b7c6d-4850.jpg", ["frog"]),  # cat/4850.jpg or frog/4850.jpg?
        _task("/data/upload/3/5f2a1b3c-nothere.jpg", ["cat"]),
        _task("/data/upload/3/5f2a1b-4851.jpg", ["cat"]),  # not Label Studio's prefix: only a path
        _task("elsewhere/4851.jpg", ["cat"]),  # not an upload: no match by file name
    ]
    text = json.dumps(tasks, indent=1)
    lines = text.splitlines()

    report = import_file(db, "default", text.encode(), file_name="project-3.json", create_classes=True)

    assert _current(db) == {
        "cat/4851.jpg": ["cat"],
        "holiday/IMG 0001.jpg": ["airplane"],
        "truck/t-1.jpg": ["truck"],
        "holiday/été.jpg": ["airplane"],
    }
    assert (report.imported, report.unchanged) == (4, 0)
    assert [u.path for u in report.unknown] == [
        "/data/upload/3/5f2a1b3c-nothere.jpg",
        "/data/upload/3/5f2a1b-4851.jpg",
        "elsewhere/4851.jpg",
    ]
    assert [(lines[a.line - 1].strip(), a.path, a.name, a.candidates) for a in report.ambiguous] == [
        ("{", "/data/upload/3/9a8b7c6d-4850.jpg", "4850.jpg", 2)
    ]
    message = report.ambiguous[0].message
    assert all(part in message for part in ("'4850.jpg'", "2 images", "local-files", "CSV")), message
    assert "frog" not in report.created_classes  # the shared name's label was not applied anywhere

    again = import_file(db, "default", text.encode(), file_name="project-3.json", create_classes=False)
    assert (again.imported, again.unchanged, len(again.ambiguous)) == (0, 4, 1)


def test_a_path_ending_that_is_an_item_wins_over_the_file_name(project):
    db = project
    text = json.dumps([_task("/data/upload/3/ab12cd34-4852.jpg", ["cat"])])

    report = import_file(db, "default", text.encode(), file_name="project-3.json", create_classes=True)

    assert _current(db) == {"upload/3/ab12cd34-4852.jpg": ["cat"]}
    assert (report.unknown, report.ambiguous) == ([], [])


def test_a_csv_naming_uploads_resolves_them_the_same_way(project):
    db = project
    text = "path,labels\n/data/upload/3/8f3e2a1b-4851.jpg,cat\n/data/upload/3/8f3e2a1b-4850.jpg,cat\n"

    report = import_file(db, "default", text.encode(), file_name="x.csv", create_classes=True)

    assert _current(db) == {"cat/4851.jpg": ["cat"]}
    assert [(a.line, a.candidates) for a in report.ambiguous] == [(3, 2)]


def test_the_cli_import_lists_uploads_whose_name_is_shared(home, project, tmp_path, capsys):
    export = tmp_path / "project-3.json"
    export.write_text(
        json.dumps(
            [_task("/data/upload/3/9a8b7c6d-4850.jpg", ["frog"]), _task("/data/upload/3/8f3e2a1b-4851.jpg", ["cat"])]
        )
    )

    assert main(["import-labels", str(export)]) == 0

    out = capsys.readouterr().out
    assert "imported 1 labels" in out and "1 uploads whose file name several images share" in out
    assert "line 1: /data/upload/3/9a8b7c6d-4850.jpg is an image uploaded to Label Studio" in out
