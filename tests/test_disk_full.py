"""A full disk during ingest, embed or a model's save: the run ends at once with an error naming
the file and the fix (free space on its file system), keeps what it had committed, leaves no
temporary files and no worker processes (ingest's process pool once hung here)."""

from __future__ import annotations

import errno
import multiprocessing
import os
import sqlite3
from dataclasses import replace
from functools import partial
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from core.features.embedding_store import EmbeddingStore
from core.features.extract import ExtractConfig
from services.disk_full import file_system_of
from services.engine import model_store
from services.engine.model_store import load_latest_model, save_model_version
from services.errors import UserError
from services.features.embeddings import embed
from services.ingest import ingest as ingest_module
from services.ingest.ingest import ingest
from services.ingest.parallel_check import ParallelCheckPlan, check_files
from services.projects import ensure_project, get_project, project_counts
from storage import queries
from tests.embedding_helpers import write_colour_images
from tests.images import write_image
from tests.test_security import fitted_probe

pytestmark = pytest.mark.slow

BATCH = 4


def disk_full(kind: str, dialect: str = "sqlite") -> Exception:
    """What a writer raises when the disk is full, as each layer reports it: the database driver's
    error bare or wrapped by SQLAlchemy, or an OSError."""
    if kind == "oserror":
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    driver_error = (
        sqlite3.OperationalError("database or disk is full")
        if dialect == "sqlite"
        else psycopg.errors.DiskFull('could not extend file "base/16384/16390": No space left on device')
    )
    return driver_error if kind == "driver" else OperationalError("INSERT INTO item ...", {}, driver_error)


def fails_after(calls: int, action, error: Exception):
    """``action``, which raises ``error`` from its call number ``calls + 1`` on."""
    made = [0]

    def wrapped(*args, **kwargs):
        made[0] += 1
        if made[0] > calls:
            raise error
        return action(*args, **kwargs)

    return wrapped


@pytest.mark.parametrize("kind", ["driver", "sqlalchemy", "oserror"])
def test_a_full_disk_ends_ingest_with_the_fix_keeps_the_committed_batches_and_stops_the_workers(
    backend_db, backend_settings, tmp_path, monkeypatch, kind
):
    images = tmp_path / "images"
    for seed in range(5 * BATCH):
        write_image(images / f"img{seed:02}.png", seed)
    settings = replace(backend_settings, ingest_batch_size=BATCH, ingest_workers=2)
    # Worker processes even for a few files, a window smaller than the folder: as a large ingest runs.
    monkeypatch.setattr(
        ingest_module,
        "check_files",
        partial(check_files, plan=ParallelCheckPlan(min_files=1, window=2 * BATCH, chunksize=1)),
    )
    monkeypatch.setattr(
        queries, "insert_items", fails_after(2, queries.insert_items, disk_full(kind, backend_db.engine.dialect.name))
    )

    with pytest.raises(UserError) as raised:
        ingest(backend_db, settings, source=images, project="p")

    message = str(raised.value)
    if backend_db.engine.dialect.name == "sqlite":
        database = Path(backend_db.engine.url.database)
        assert str(database) in message and f"free space on {file_system_of(database)}" in message
    else:
        assert backend_db.engine.url.host in message and "free space on the database server" in message
    assert "run ingest again" in message
    assert multiprocessing.active_children() == []  # the pool is shut down, not left to the garbage collector
    assert project_counts(backend_db, get_project(backend_db, "p")).ok == 2 * BATCH  # the committed batches

    monkeypatch.undo()  # space freed: a rerun adds the rest
    assert ingest(backend_db, settings, source=images, project="p").added == 3 * BATCH


@pytest.fixture
def colour_project(db, settings, tmp_path):
    write_colour_images(tmp_path / "images")
    ingest(db, settings, source=tmp_path / "images", project="p")
    return "p"


CONFIG = ExtractConfig(num_workers=0, batch_size=2, flush_items=2)


def no_temporary_files(folder: Path) -> bool:
    return not [path for path in folder.rglob("*") if path.name.endswith(".tmp")]


def test_a_full_disk_while_embedding_ends_with_the_fix_and_keeps_the_rows_written(
    db, settings, colour_project, monkeypatch
):
    write_rows = EmbeddingStore.write_rows
    monkeypatch.setattr(EmbeddingStore, "write_rows", fails_after(2, write_rows, disk_full("oserror")))

    with pytest.raises(UserError) as raised:
        embed(db, settings, project=colour_project, backbone="bundled", config=CONFIG)

    folder = next((settings.home / "embeddings").glob("project-*/*"))
    assert str(folder) in str(raised.value) and f"free space on {file_system_of(folder)}" in str(raised.value)
    assert "run embed again" in str(raised.value)
    assert EmbeddingStore.open_for_reading(folder).done_mask().sum() == 4  # two flushes of two rows
    assert no_temporary_files(settings.home)

    monkeypatch.setattr(EmbeddingStore, "write_rows", write_rows)  # space freed
    report = embed(db, settings, project=colour_project, backbone="bundled", config=CONFIG)
    assert (report.already_done, report.embedded) == (4, 8)


def test_a_full_disk_while_writing_the_stores_description_leaves_no_temporary_file(
    db, settings, colour_project, monkeypatch
):
    monkeypatch.setattr(os, "fsync", fails_after(0, os.fsync, disk_full("oserror")))

    with pytest.raises(UserError, match="free space on"):
        embed(db, settings, project=colour_project, backbone="bundled", config=CONFIG)

    assert no_temporary_files(settings.home)
    monkeypatch.undo()  # space freed: the failed run gave the store's writer lock back
    assert embed(db, settings, project=colour_project, backbone="bundled", config=CONFIG).embedded == 12


def test_a_full_disk_while_saving_a_model_says_so_and_leaves_no_temporary_file(db, settings, tmp_path, monkeypatch):
    (tmp_path / "images").mkdir()
    project = ensure_project(db, name="p", root=None, root_if_new=tmp_path / "images")

    def part_then_full(handle, **arrays):
        handle.write(b"part of it")
        raise disk_full("oserror")

    monkeypatch.setattr(model_store.np, "savez", part_then_full)

    with pytest.raises(UserError) as raised:
        save_model_version(
            db, settings, project_id=project.id, backbone_key="bundled", probe=fitted_probe(), n_labels=40, metrics={}
        )

    models = settings.home / "models"
    assert str(models) in str(raised.value) and f"free space on {file_system_of(models)}" in str(raised.value)
    assert [path for path in models.rglob("*") if path.is_file()] == []  # was a .tmp file per failed save
    assert load_latest_model(db, settings, project_id=project.id, backbone_key="bundled") is None
