"""Back up the SQLite database while the app keeps writing to it, and restore a backup."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from services.config import Settings
from services.errors import UserError

BUSY_TIMEOUT_S = 10.0  # as long as a writer waits for another (storage.db.SqlitePragmas)


@dataclass(frozen=True)
class BackupReport:
    """A finished backup: where it is, its size, and the schema revision(s) it holds."""

    source: Path
    path: Path
    size_bytes: int
    revisions: tuple[str, ...]


def backup_database(settings: Settings, destination: Path) -> BackupReport:
    """Copy the SQLite database at ``settings.database_url`` to ``destination``.

    SQLite's online backup API copies the whole database in one step inside a read
    transaction, so the copy is one consistent moment of the database and writers go
    on meanwhile (WAL mode never blocks them for a reader). The copy is written to a
    temporary file beside ``destination``, switched to a self-contained rollback
    journal (no ``-wal`` file to carry), checked with ``PRAGMA integrity_check``,
    flushed to disk, and only then renamed over ``destination``: an interrupted or
    failed backup leaves any earlier file at ``destination`` as it was.

    Parameters
    ----------
    settings : Settings
        Its ``database_url`` must be a SQLite file.
    destination : Path
        The backup file; its folder is created if needed, an existing file is replaced.

    Returns
    -------
    BackupReport

    Raises
    ------
    UserError
        When the database is not a SQLite file (use ``pg_dump`` for PostgreSQL), does
        not exist, or ``destination`` is the database itself or a folder.
    """
    source = _sqlite_file(settings.resolved_database_url)
    destination = Path(destination).expanduser().absolute()
    if destination.is_dir():
        raise UserError(
            f"{destination} is a folder; pass the backup file's name, e.g. {destination / 'banana-backup.db'}"
        )
    if destination.exists() and destination.samefile(source):
        raise UserError(f"{destination} is the database itself; back it up to another file")
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".partial")
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        revisions = _copy(source, temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, destination)
    except (sqlite3.Error, OSError) as error:
        raise UserError(
            f"backup of {source} to {destination} failed: {error}; {destination} was not changed"
        ) from error
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_folder(destination.parent)
    return BackupReport(source=source, path=destination, size_bytes=destination.stat().st_size, revisions=revisions)


@dataclass(frozen=True)
class RestoreReport:
    """A finished restore: the database, the backup it now holds, and where the database
    as it was before is saved (None when there was none)."""

    path: Path
    backup: Path
    previous: Path | None
    revisions: tuple[str, ...]


def restore_database(settings: Settings, backup: Path) -> RestoreReport:
    """Make the SQLite database at ``settings.database_url`` hold what ``backup`` holds.

    The backup is checked first (``PRAGMA integrity_check``, a banana schema); the
    database as it is now is then saved with :func:`backup_database` beside itself as
    ``<name>.before-restore-<UTC time>.db``, so a restore loses nothing; finally SQLite's
    online backup API copies the backup into the database in one transaction. The
    schema is upgraded when the app or a command next opens the database. Stop the app
    first: a running app keeps its labels in memory and would go on from them.

    Raises
    ------
    UserError
        When the database is not a SQLite file, ``backup`` is missing, damaged, not a
        banana database, or the database itself.
    """
    target = _sqlite_path(settings.resolved_database_url)
    backup = Path(backup).expanduser().absolute()
    if not backup.is_file():
        raise UserError(f"no backup file at {backup}; pass the FILE that `backup --out FILE` wrote")
    if target.exists() and backup.samefile(target):
        raise UserError(f"{backup} is the database itself; pass a backup file")
    previous = None
    with closing(sqlite3.connect(f"{backup.as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)) as reading:
        try:
            revisions = _checked_revisions(reading, backup, nothing_written="the database was not changed")
        except sqlite3.DatabaseError as error:
            raise UserError(
                f"{backup} is not a readable SQLite database ({error}); the database was not changed"
            ) from error
        if target.is_file():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            previous = backup_database(
                settings, target.with_name(f"{target.stem}.before-restore-{stamp}{target.suffix}")
            ).path
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with closing(sqlite3.connect(target, timeout=BUSY_TIMEOUT_S)) as writing:
                reading.backup(writing, pages=-1)
        except sqlite3.Error as error:
            kept = f"; the database as it was is saved at {previous}" if previous else ""
            raise UserError(f"restore of {backup} into {target} failed: {error}{kept}") from error
    return RestoreReport(path=target, backup=backup, previous=previous, revisions=revisions)


def _sqlite_file(database_url: str) -> Path:
    source = _sqlite_path(database_url)
    if not source.is_file():
        raise UserError(f"no database at {source}; check the home or database_url setting")
    return source


def _sqlite_path(database_url: str) -> Path:
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "postgresql":
        raise UserError(
            "the database is PostgreSQL; back it up with PostgreSQL's own tool, e.g. "
            f"pg_dump --format=custom --file=banana.dump {url.database or 'DBNAME'} "
            "(restore with pg_restore)"
        )
    if backend != "sqlite":
        raise UserError(f"backup copies SQLite databases; for a {backend} database use that database's own backup tool")
    if url.database is None or url.database in ("", ":memory:"):
        raise UserError("the database is in memory; there is no file to back up or restore")
    return Path(url.database).expanduser().absolute()


def _copy(source: Path, target: Path) -> tuple[str, ...]:
    """Copy ``source`` into the empty file ``target``; return the target's schema revisions."""
    with (
        closing(sqlite3.connect(source, timeout=BUSY_TIMEOUT_S)) as reading,
        closing(sqlite3.connect(target, timeout=BUSY_TIMEOUT_S)) as writing,
    ):
        # pages=-1: one step, one read transaction. In steps, every commit by another
        # connection in between would restart the copy, and a busy database never finishes.
        reading.backup(writing, pages=-1)
        writing.execute("PRAGMA journal_mode = DELETE")
        return _checked_revisions(writing, source, nothing_written="nothing was written to the backup file")


def _checked_revisions(connection: sqlite3.Connection, name: Path, *, nothing_written: str) -> tuple[str, ...]:
    """The schema revisions of a copy of ``name`` after ``PRAGMA integrity_check`` passes."""
    problems = [row[0] for row in connection.execute("PRAGMA integrity_check")]
    if problems != ["ok"]:
        raise UserError(
            f"{name} failed PRAGMA integrity_check ({'; '.join(problems[:5])}); it may be damaged; {nothing_written}"
        )
    if connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'").fetchone() is None:
        raise UserError(f"{name} is not a banana database (it has no alembic_version table); {nothing_written}")
    return tuple(sorted(row[0] for row in connection.execute("SELECT version_num FROM alembic_version")))


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
