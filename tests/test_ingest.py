import os
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from services.errors import UserError
from services.ingest.file_scan import scan_folder
from services.ingest.image_check import check_image_file
from services.ingest.ingest import ingest
from services.ingest.parallel_check import ParallelCheckPlan, check_files
from storage.models import DuplicateFile, Item, ItemStatus
from tests.images import image_bytes, png_header_claiming, write_image


def build_hostile_folder(base: Path) -> tuple[Path, set[str], set[str]]:
    """Return (root, good paths, bad paths) for a folder of good and hostile files."""
    root = base / "root"
    outside = base / "outside"
    write_image(outside / "secret.png", 999)
    good = {
        "a.png": image_bytes(1),
        "nested/deeper/b.jpg": image_bytes(2, image_format="JPEG"),
        "c.webp": image_bytes(3, image_format="WEBP"),
        "d.bmp": image_bytes(4, image_format="BMP"),
        "e.gif": image_bytes(5, image_format="GIF"),
        "f.tiff": image_bytes(6, image_format="TIFF"),
        "jpeg-named.png": image_bytes(7, image_format="JPEG"),  # type comes from content
        "ünïcødé 猫 🍌.png": image_bytes(8),
        "twin-1.png": image_bytes(9),
    }
    for relative, data in good.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    (root / "twin-2.png").write_bytes(good["twin-1.png"])  # same content: one item
    bad = {
        "truncated.jpg": image_bytes(10, image_format="JPEG", size=(64, 64))[:300],
        "random.png": os.urandom(2048),
        "empty.jpg": b"",
        "bomb.png": png_header_claiming(100_000, 100_000),
        "notes.txt": b"these are not pixels\n",
    }
    for relative, data in bad.items():
        (root / relative).write_bytes(data)
    (root / "escape.png").symlink_to(outside / "secret.png")
    (root / "escape-dir").symlink_to(outside)
    return root, set(good), set(bad) | {"escape.png", "escape-dir"}


def _items(db) -> list[Item]:
    with db.reading() as session:
        return list(session.scalars(select(Item)))


def test_hostile_folder_gives_one_error_row_per_bad_file(db, settings, tmp_path):
    root, good, bad = build_hostile_folder(tmp_path)

    report = ingest(db, settings, source=root, project="p")

    items = _items(db)
    errors = {item.path: item.error for item in items if item.status is ItemStatus.ERROR}
    assert set(errors) == bad
    assert len(report.errors) == len(bad)
    for path, message in errors.items():
        assert message.startswith(f"{path}: ") and "Fix: " in message
    assert "0 bytes" in errors["empty.jpg"]
    assert "decompression bomb" in errors["bomb.png"]
    assert "truncated" in errors["truncated.jpg"]
    assert "outside the project root" in errors["escape.png"]
    assert "outside the project root" in errors["escape-dir"]
    assert "is not a JPEG, PNG, WEBP, BMP, GIF, TIFF image" in errors["random.png"]
    assert "is not a JPEG, PNG, WEBP, BMP, GIF, TIFF image" in errors["notes.txt"]

    ok = {item.path: item for item in items if item.status is ItemStatus.OK}
    assert set(ok) == good
    assert ok["jpeg-named.png"].format == "JPEG"
    assert (ok["c.webp"].format, ok["e.gif"].format, ok["f.tiff"].format) == ("WEBP", "GIF", "TIFF")
    assert (ok["a.png"].width, ok["a.png"].height) == (8, 8)
    assert len({item.sha256 for item in ok.values()}) == len(ok)
    with db.reading() as session:
        duplicates = list(session.scalars(select(DuplicateFile)))
    assert [(d.path, d.item_id) for d in duplicates] == [("twin-2.png", ok["twin-1.png"].id)]
    assert (report.added, report.duplicates, report.skipped_known) == (len(good), 1, 0)


@pytest.mark.slow
def test_rerun_adds_nothing_and_reads_nothing(db, settings, tmp_path, monkeypatch):
    root, good, bad = build_hostile_folder(tmp_path)
    ingest(db, settings, source=root, project="p")
    before = [(item.id, item.path, item.status, item.error) for item in _items(db)]

    def must_not_read(*args, **kwargs):
        raise AssertionError("a known file was read again")

    monkeypatch.setattr("services.ingest.parallel_check.check_image_file", must_not_read)
    report = ingest(db, settings, source=root, project="p")

    assert [(item.id, item.path, item.status, item.error) for item in _items(db)] == before
    assert (report.added, report.duplicates, report.errors) == (0, 0, [])
    assert report.skipped_known == len(good) + 1 + len(bad)


def test_rerun_adds_only_new_files(db, settings, tmp_path):
    root = tmp_path / "root"
    write_image(root / "one.png", 1)
    ingest(db, settings, source=root, project="p")
    write_image(root / "two.png", 2)

    report = ingest(db, settings, source=root, project="p")

    assert (report.added, report.skipped_known) == (1, 1)
    assert sorted(item.path for item in _items(db)) == ["one.png", "two.png"]


def test_a_fixed_bad_file_is_checked_again(db, settings, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "x.png").write_bytes(b"broken")
    ingest(db, settings, source=root, project="p")
    write_image(root / "x.png", 1)
    os.utime(root / "x.png", ns=(1, 2_000_000_000))  # a different mtime even on coarse clocks

    report = ingest(db, settings, source=root, project="p")

    [item] = _items(db)
    assert (report.added, item.status, item.error, item.width) == (1, ItemStatus.OK, None, 8)


def test_a_changed_image_is_reported_and_kept(db, settings, tmp_path):
    root = tmp_path / "root"
    write_image(root / "x.png", 1)
    ingest(db, settings, source=root, project="p")
    [before] = _items(db)
    write_image(root / "x.png", 2)
    os.utime(root / "x.png", ns=(1, 2_000_000_000))

    report = ingest(db, settings, source=root, project="p")

    [after] = _items(db)
    assert report.changed == ["x.png"]
    assert after.sha256 == before.sha256


def test_files_over_the_size_limit_are_rejected(db, settings, tmp_path):
    root = tmp_path / "root"
    big = write_image(root / "big.png", 1, size=(64, 64))

    ingest(db, replace(settings, max_image_bytes=big.stat().st_size - 1), source=root, project="p")

    [item] = _items(db)
    assert item.status is ItemStatus.ERROR and "over the limit" in item.error and "BANANA_MAX_IMAGE_BYTES" in item.error


def test_pixel_limit_is_enforced(db, settings, tmp_path):
    root = tmp_path / "root"
    write_image(root / "wide.png", 1, size=(100, 10))

    ingest(db, replace(settings, max_image_pixels=999), source=root, project="p")

    [item] = _items(db)
    assert item.status is ItemStatus.ERROR and "1000 pixels is over the limit of 999" in item.error


def test_unreadable_file_is_rejected(db, settings, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads files regardless of permissions")
    root = tmp_path / "root"
    write_image(root / "locked.png", 1).chmod(0)

    ingest(db, settings, source=root, project="p")

    [item] = _items(db)
    assert item.status is ItemStatus.ERROR and "cannot read file" in item.error


def test_non_utf8_file_name_gets_an_error_row(db, settings, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (Path(os.fsdecode(bytes(root) + b"/caf\xe9.png"))).write_bytes(image_bytes(1))

    ingest(db, settings, source=root, project="p")

    [item] = _items(db)
    assert (item.path, item.status) == ("caf\\xe9.png", ItemStatus.ERROR)
    assert "not valid UTF-8" in item.error


def test_symlink_inside_the_root_is_followed_once(db, settings, tmp_path):
    root = tmp_path / "root"
    write_image(root / "real" / "a.png", 1)
    (root / "link.png").symlink_to(root / "real" / "a.png")
    (root / "link-dir").symlink_to(root / "real")

    report = ingest(db, settings, source=root, project="p")

    assert [item.path for item in _items(db)] == ["link.png"]  # sorted scan meets the link first
    assert (report.added, report.duplicates, report.errors) == (1, 1, [])


def test_list_file_ingests_listed_paths_and_rejects_outsiders(db, settings, tmp_path):
    root = tmp_path / "root"
    write_image(root / "a.png", 1)
    write_image(root / "sub" / "b.png", 2)
    write_image(tmp_path / "elsewhere.png", 3)
    listing = root / "files.txt"
    listing.write_text(f"# images\na.png\n\n{root / 'sub'}\n../elsewhere.png\nmissing.png\n", encoding="utf-8")

    report = ingest(db, settings, source=listing, project="p")

    by_path = {item.path: item for item in _items(db)}
    assert {path for path, item in by_path.items() if item.status is ItemStatus.OK} == {"a.png", "sub/b.png"}
    assert "outside the project root" in by_path["../elsewhere.png"].error
    assert "cannot read file" in by_path["missing.png"].error
    assert report.added == 2 and len(report.errors) == 2


def test_folder_outside_an_existing_projects_root_is_refused(db, settings, tmp_path):
    write_image(tmp_path / "one" / "a.png", 1)
    write_image(tmp_path / "two" / "b.png", 2)
    ingest(db, settings, source=tmp_path / "one", project="p")

    with pytest.raises(UserError, match="outside the root .* of project 'p'"):
        ingest(db, settings, source=tmp_path / "two", project="p")


def test_subfolder_of_an_existing_root_keeps_root_relative_paths(db, settings, tmp_path):
    write_image(tmp_path / "root" / "a.png", 1)
    ingest(db, settings, source=tmp_path / "root", project="p")
    write_image(tmp_path / "root" / "sub" / "b.png", 2)

    ingest(db, settings, source=tmp_path / "root" / "sub", project="p")

    assert sorted(item.path for item in _items(db)) == ["a.png", "sub/b.png"]


def test_missing_source_is_a_user_error(db, settings, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        ingest(db, settings, source=tmp_path / "nope", project="p")


def test_small_batches_commit_and_report_progress(db, settings, tmp_path):
    root = tmp_path / "root"
    for seed in range(7):
        write_image(root / f"{seed}.png", seed)
    calls = []

    ingest(
        db,
        replace(settings, ingest_batch_size=3),
        source=root,
        project="p",
        on_progress=lambda done, total: calls.append((done, total)),
    )

    assert calls == [(3, 7), (6, 7), (7, 7)]
    assert len(_items(db)) == 7


@pytest.mark.slow
def test_worker_processes_give_the_same_outcomes_in_order(tmp_path):
    root, _, _ = build_hostile_folder(tmp_path)
    files = list(scan_folder(root, root=root.resolve()))
    limits = {"max_bytes": 10**6, "max_pixels": 10**7}

    in_process = list(check_files(files, workers=1, **limits))
    in_workers = list(
        check_files(files, workers=2, plan=ParallelCheckPlan(min_files=1, window=5, chunksize=2), **limits)
    )

    assert in_workers == in_process
    assert len(in_process) == len(files)


def test_special_files_are_rejected(db, settings, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / "pipe.png")

    ingest(db, settings, source=root, project="p")

    [item] = _items(db)
    assert item.status is ItemStatus.ERROR and "not a regular file" in item.error


def test_a_fifo_swapped_in_after_the_scan_is_refused_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")

    outcome = check_image_file(tmp_path / "pipe.png", size_bytes=10, max_bytes=100, max_pixels=100)

    assert outcome.reason == "not a regular file"
