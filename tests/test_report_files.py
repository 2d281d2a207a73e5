"""The CSV files banana writes besides label exports (triage --out, select --out, export-embeddings):
cells a spreadsheet would run as formulas are defused as in label exports, and a full disk
ends the write with the file and the fix, leaving the old files as they were and no temporary
file (they were raw tracebacks that left a .tmp file, and an export-embeddings whose table
failed left new vectors beside the old table)."""

from __future__ import annotations

import csv
import errno
import io
import math
import os
from pathlib import Path

import pytest

from core.features.extract import ExtractConfig
from services.data_engine import triage as triage_module
from services.data_engine.headless_selection import HeadlessSelection, PickRow, picks_csv
from services.data_engine.triage import TriageReport, TriageRow, csv_text, write_csv
from services.errors import UserError
from services.features import embeddings as embeddings_module
from services.features.embeddings import embed, export_embeddings
from services.ingest.ingest import ingest
from tests.embedding_helpers import write_colour_images
from tests.images import write_image

FORMULAS = ("=cmd.png", "+x.png", "-y.png", "@z.png")


def formula_cells(text: str) -> list[str]:
    """The cells of CSV ``text`` below its header that a spreadsheet would run as formulas."""
    cells = [cell for row in list(csv.reader(io.StringIO(text)))[1:] for cell in row]
    return [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_a_triage_report_defuses_formulas_in_paths_and_class_names():
    report = TriageReport(
        batch="b",
        rows=[
            TriageRow(n, path, ("novel",), 0.5, "=HYPERLINK(1)", 0.5, "@near.png", 0.9, "-1")
            for n, path in enumerate(FORMULAS)
        ],
    )

    text = csv_text(report)

    assert formula_cells(text) == []
    assert "'=cmd.png" in text and "'=HYPERLINK(1)" in text and "'@near.png" in text


def test_a_selection_csv_defuses_formulas_in_paths_and_class_names():
    picks = [PickRow(n + 1, n, path, "margin", ("+cat", "dog"), 0.5, {}) for n, path in enumerate(FORMULAS)]
    selection = HeadlessSelection(1, "/root", "default", None, 0, 4, 0, picks)

    text = picks_csv(selection)

    assert formula_cells(text) == []
    assert "'=cmd.png" in text and "'+cat;dog" in text


@pytest.fixture
def embedded(db, settings, tmp_path):
    """Project "p" of colour images and one named like a formula, embedded with the bundled backbone."""
    write_colour_images(tmp_path / "images")
    write_image(tmp_path / "images" / "=cmd.png", 1, size=(24, 24))
    ingest(db, settings, source=tmp_path / "images", project="p")
    embed(db, settings, project="p", backbone="bundled", config=ExtractConfig(num_workers=0, batch_size=4))
    return "p"


def test_an_embeddings_table_defuses_formulas_in_paths(db, settings, embedded, tmp_path):
    report = export_embeddings(db, settings, project=embedded, backbone="bundled", out=tmp_path / "e.npy")

    text = report.table.read_text(encoding="utf-8")
    assert formula_cells(text) == [] and "'=cmd.png" in text


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def files_of(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


@pytest.mark.parametrize("failing", ["vectors", "table"])
def test_a_full_disk_during_export_embeddings_keeps_the_old_files_and_says_what_to_do(
    db, settings, embedded, tmp_path, monkeypatch, failing
):
    out = tmp_path / "export" / "e.npy"
    export_embeddings(db, settings, project=embedded, backbone="bundled", out=out)
    with open(out, "r+b") as vectors:  # an older export: these must stay as they are
        vectors.seek(-4, os.SEEK_END)
        vectors.write(b"old!")
    before = files_of(out.parent)
    if failing == "vectors":
        monkeypatch.setattr(embeddings_module.np, "save", full_disk)
    else:
        monkeypatch.setattr(embeddings_module, "_write_table", full_disk)

    with pytest.raises(UserError) as raised:
        export_embeddings(db, settings, project=embedded, backbone="bundled", out=out)

    shown = out if failing == "vectors" else out.with_suffix(".csv")
    assert f"could not write {shown}" in str(raised.value) and "free space" in str(raised.value)
    assert files_of(out.parent) == before  # no temporary file; the vectors and table still match


def test_a_full_disk_while_writing_a_triage_report_keeps_the_old_one_and_says_what_to_do(tmp_path, monkeypatch):
    out = tmp_path / "report.csv"
    out.write_text("old\n")
    monkeypatch.setattr(triage_module, "_write_rows", full_disk)

    with pytest.raises(UserError) as raised:
        write_csv(
            TriageReport(batch="b", rows=[TriageRow(1, "a.png", (), math.nan, None, None, None, None, None)]), out
        )

    assert f"could not write {out}" in str(raised.value) and "free space" in str(raised.value)
    assert files_of(tmp_path) == {"report.csv": b"old\n"}
