"""Export / import page and services: CSV, JSON, COCO-style JSON, Label Studio, ImageFolder, and CSV import.
Round trips and malformed files: tests/test_transfer_formats.py."""

import csv
import io
import json
from dataclasses import replace

import pytest

from services.errors import UserError
from services.labeling.session import LabelingSession
from services.transfer.export import export_image_folder, labeled_images, to_coco, to_csv, to_json
from services.transfer.imports import import_file
from tests.app_helpers import open_page
from tests.labeling_project import class_id, true_class


@pytest.fixture
def labeled(engine):
    session = LabelingSession(engine, "ann")
    for _ in range(5):
        ask = session.current()
        session.label(ask.item_id, [class_id(engine, true_class(ask.path))])
    session.undo()  # the undone image is not exported
    return labeled_images(engine.db, "default")


@pytest.mark.slow
def test_exports_hold_each_labeled_image_once_with_its_class(engine, labeled):
    assert len(labeled) == 4
    rows = list(csv.DictReader(io.StringIO(to_csv(labeled))))
    assert [(r["path"], r["labels"], r["annotator"]) for r in rows] == [
        (i.path, true_class(i.path), "ann") for i in labeled
    ]
    assert [r["labels"] for r in json.loads(to_json(labeled))] == [[true_class(i.path)] for i in labeled]
    coco = json.loads(to_coco(engine.db, "default", labeled))
    names = {c["id"]: c["name"] for c in coco["categories"]}
    files = {i["id"]: i["file_name"] for i in coco["images"]}
    assert sorted((files[a["image_id"]], names[a["category_id"]]) for a in coco["annotations"]) == sorted(
        (i.path, true_class(i.path)) for i in labeled
    )
    assert all(i["width"] == i["height"] == 32 for i in coco["images"])


@pytest.mark.parametrize("mode", ["copy", "hardlink", "symlink"])
def test_image_folder_export_puts_each_image_under_its_class(engine, labeled, tmp_path, mode):
    written = export_image_folder(engine.db, "default", labeled, tmp_path / "out", files=mode)
    files = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.jpg"))
    assert written == 4
    assert files == sorted(f"{true_class(i.path)}/{i.path.replace('/', '%2F')}" for i in labeled)
    assert all(p.is_symlink() == (mode == "symlink") for p in (tmp_path / "out").rglob("*.jpg"))
    assert all((p.lstat().st_nlink == 2) == (mode == "hardlink") for p in (tmp_path / "out").rglob("*.jpg"))
    with pytest.raises(UserError, match="not empty"):
        export_image_folder(engine.db, "default", labeled, tmp_path / "out", files=mode)


@pytest.mark.slow
def test_image_folder_export_refuses_a_path_out_of_the_root_and_writes_nothing(engine, labeled, tmp_path):
    # A tampered row (or a file swapped for a link) must not copy a file from outside the root.
    tampered = [replace(labeled[0], path="../../outside.jpg"), *labeled[1:]]
    with pytest.raises(UserError, match="outside the project root"):
        export_image_folder(engine.db, "default", tampered, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # checked before anything was written


@pytest.mark.slow
def test_csv_import_supersedes_current_labels_and_reports_unknown_paths(engine, labeled):
    first = labeled[0]
    text = "path,labels\n" + f"{first.path},truck\n{labeled[1].path},{labeled[1].labels[0]}\nnot/there.jpg,cat\n"
    with pytest.raises(UserError, match="line 2: unknown class boat"):
        import_file(
            engine.db, "default", (text.replace("truck", "boat")).encode(), file_name="labels.csv", create_classes=False
        )

    report = import_file(engine.db, "default", (text).encode(), file_name="labels.csv", create_classes=False)
    assert (report.imported, report.unchanged, [u.path for u in report.unknown]) == (1, 1, ["not/there.jpg"])
    after = {i.path: i for i in labeled_images(engine.db, "default")}
    assert after[first.path].labels == ["truck"] and after[first.path].source == "import"

    report = import_file(
        engine.db,
        "default",
        ("path,labels\n" + f"{first.path},boat\n").encode(),
        file_name="labels.csv",
        create_classes=True,
    )
    assert report.created_classes == ["boat"]


@pytest.mark.slow
def test_export_page_offers_four_downloads_and_the_label_studio_config(engine, labeled):
    app = open_page("pages/transfer.py")
    assert [b.label for b in app.get("download_button")] == ["CSV", "JSON", "COCO-style JSON", "Label Studio tasks"]
    assert all(f'<Choice value="{name}"/>' in app.code[0].value for name in ("airplane", "cat", "frog", "truck"))


@pytest.mark.slow
def test_the_page_says_what_is_missing_when_a_form_is_sent_empty(engine, labeled):
    app = open_page("pages/transfer.py")
    next(b for b in app.button if b.label == "Write one folder per class").click().run()
    assert [e.value for e in app.error] == ["Enter the folder to write the images to: a new folder, or an empty one."]
    next(b for b in app.button if b.label == "Import").click().run()
    assert [e.value for e in app.error] == ["Choose a CSV or JSON file first."]
