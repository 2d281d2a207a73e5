"""Ingest a folder, or a text file listing paths, into a project."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from tqdm import tqdm

from services.config import Settings
from services.database import Database
from services.disk_full import database_full_error, is_disk_full
from services.errors import UserError
from services.ingest.file_scan import FoundFile, scan_folder, scan_list_file
from services.ingest.image_check import ImageFacts
from services.ingest.parallel_check import check_files
from services.ingest.rejection import Rejection
from services.projects import ensure_project
from storage import queries
from storage.models import ItemStatus
from storage.queries import KnownFile

ProgressCallback = Callable[[int, int], None]


@dataclass
class IngestReport:
    """What one ingest run did.

    Attributes
    ----------
    added : int
        New images stored as items.
    skipped_known : int
        Files whose path, size and mtime were already recorded; not read again.
    duplicates : int
        New files whose content equals an item's; recorded as duplicate files.
    errors : list of str
        One message per file rejected in this run, naming the file, reason and fix.
    changed : list of str
        Known paths whose image file changed since it was ingested; left as first recorded.
    """

    project: str
    added: int = 0
    skipped_known: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


def ingest(
    db: Database,
    settings: Settings,
    *,
    source: Path,
    project: str,
    root: Path | None = None,
    show_progress: bool = False,
    on_progress: ProgressCallback | None = None,
) -> IngestReport:
    """Add the images under a folder, or listed in a text file, to a project.

    Every file ends up as exactly one of: an item, a duplicate of an item, or
    an error row (an item with ``status=error`` whose text names the file, the
    reason and the fix). Files recorded by an earlier run with the same size
    and mtime are skipped unread; a rejected file that has changed since is
    checked again. Results are committed every ``settings.ingest_batch_size``
    files, so an interrupted run keeps what it did and a re-run finishes it.

    Parameters
    ----------
    db : Database
    settings : Settings
        Size limits and batch size.
    source : Path
        A folder (scanned recursively) or a UTF-8 text file with one path per line.
    project : str
        Project name; created on first use.
    root : Path, optional
        Project root; by default an existing project's root, else the folder
        (or the list file's folder).
    show_progress : bool
        Draw a tqdm progress bar on the terminal.
    on_progress : callable, optional
        Called as ``on_progress(done, total)`` after each committed batch.

    Returns
    -------
    IngestReport

    Raises
    ------
    UserError
        When ``source`` is missing or outside the project root, or the database's disk is full
        (naming where to free space; the batches committed before stay).
    """
    source = Path(source)
    if not source.exists():
        raise UserError(f"{source} does not exist; pass a folder of images or a text file listing image paths")
    project_row = ensure_project(db, name=project, root=root, root_if_new=source if source.is_dir() else source.parent)
    real_root = Path(project_row.root_path)
    if source.is_dir():
        try:
            found = list(scan_folder(source, root=real_root))
        except ValueError:
            raise UserError(
                f"folder {source} is outside the root {real_root} of project {project!r}; "
                "ingest it into another --project"
            ) from None
    else:
        try:
            found = list(scan_list_file(source, root=real_root))
        except UnicodeDecodeError:
            raise UserError(f"{source} is not a folder or a UTF-8 text file listing image paths") from None

    report = IngestReport(project=project)
    with db.reading() as session:
        pending = _pending_files(found, queries.known_files(session, project_row.id), report)
        # Only needed when there is something to read; skipping it keeps a no-op re-run fast.
        item_id_by_sha256: dict[str, int | None] = (
            dict(queries.item_ids_by_sha256(session, project_row.id)) if pending else {}
        )

    writer = _BatchWriter(db=db, project_id=project_row.id, item_id_by_sha256=item_id_by_sha256)
    outcomes = check_files(
        [file for file, _ in pending],
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        workers=settings.ingest_workers,
    )
    with closing(outcomes), tqdm(total=len(pending), unit="file", desc="ingest", disable=not show_progress) as bar:
        for done, ((file, known_error_id), outcome) in enumerate(zip(pending, outcomes), start=1):
            writer.add(file, outcome, known_error_id, report)
            bar.update()
            if writer.size >= settings.ingest_batch_size or done == len(pending):
                writer.flush()
                if on_progress is not None:
                    on_progress(done, len(pending))
    return report


def _pending_files(
    found: Iterable[FoundFile], known: dict[str, KnownFile], report: IngestReport
) -> list[tuple[FoundFile, int | None]]:
    """Return the files to read, each with the id of its earlier error row if any."""
    pending: list[tuple[FoundFile, int | None]] = []
    for file in found:
        seen = known.get(file.path)
        if seen is None:
            pending.append((file, None))
        elif (seen.size_bytes, seen.mtime_ns) == (file.size_bytes, file.mtime_ns):
            report.skipped_known += 1
        elif seen.status is ItemStatus.ERROR:
            pending.append((file, seen.item_id))
        else:
            report.changed.append(file.path)
    return pending


@dataclass
class _BatchWriter:
    """Collects per-file outcomes and writes them in one short transaction per batch."""

    db: Database
    project_id: int
    # None marks content seen in this batch whose item has no id yet.
    item_id_by_sha256: dict[str, int | None]
    new_items: list[dict[str, Any]] = field(default_factory=list)
    item_updates: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    duplicates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    superseded_error_ids: list[int] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.new_items) + len(self.item_updates) + len(self.duplicates)

    def add(
        self, file: FoundFile, outcome: ImageFacts | Rejection, known_error_id: int | None, report: IngestReport
    ) -> None:
        file_values = {
            "project_id": self.project_id,
            "path": file.path,
            "size_bytes": file.size_bytes,
            "mtime_ns": file.mtime_ns,
        }
        if isinstance(outcome, Rejection):
            message = outcome.message(file.path)
            report.errors.append(message)
            row = file_values | {
                "status": ItemStatus.ERROR,
                "error": message,
                "sha256": None,
                "format": None,
                "width": None,
                "height": None,
            }
        elif outcome.sha256 in self.item_id_by_sha256:
            report.duplicates += 1
            self.duplicates.append((outcome.sha256, file_values))
            if known_error_id is not None:
                self.superseded_error_ids.append(known_error_id)
            return
        else:
            report.added += 1
            self.item_id_by_sha256[outcome.sha256] = None
            row = file_values | {
                "status": ItemStatus.OK,
                "error": None,
                "sha256": outcome.sha256,
                "format": outcome.format,
                "width": outcome.width,
                "height": outcome.height,
            }
        if known_error_id is None:
            self.new_items.append(row)
        else:
            self.item_updates.append((known_error_id, row))

    def flush(self) -> None:
        try:
            with self.db.writing() as session:
                for item_id, sha256 in queries.insert_items(session, self.new_items):
                    if sha256 is not None:
                        self.item_id_by_sha256[sha256] = item_id
                for item_id, values in self.item_updates:
                    queries.update_item(session, item_id, values)
                    if values["sha256"] is not None:
                        self.item_id_by_sha256[values["sha256"]] = item_id
                queries.delete_items(session, self.superseded_error_ids)
                queries.insert_duplicate_files(
                    session,
                    [values | {"item_id": self.item_id_by_sha256[sha256]} for sha256, values in self.duplicates],
                )
        except IntegrityError as error:
            raise UserError(
                f"another ingest into this project wrote the same files at the same time ({error.orig}); "
                "run ingest again, one at a time"
            ) from None
        except Exception as error:
            if is_disk_full(error):  # the batches committed before stay; a rerun skips them
                raise database_full_error(self.db.engine.url, error, rerun="ingest") from None
            raise
        self.new_items.clear()
        self.item_updates.clear()
        self.duplicates.clear()
        self.superseded_error_ids.clear()
