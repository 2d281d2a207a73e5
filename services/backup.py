"""Back up the SQLite database while the app keeps writing to it."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass
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
    source = _sqlite_file(settings.database_url)
    destination = Path(destination).expanduser().absolute()
    if destination.is_dir():
        raise UserError(f"{destination} is a folder; pass the backup file's name, e.g. {destination / 'banana-backup.db'}")
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
        raise UserError(f"backup of {source} to {destination} failed: {error}; {destination} was not changed") from error
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_folder(destination.parent)
    return BackupReport(source=source, path=destination, size_bytes=destination.stat().st_size, revisions=revisions)


def _sqlite_file(database_url: str) -> Path:
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
    if url.database in (None, "", ":memory:"):
        raise UserError("the database is in memory; there is no file to back up")
    source = Path(url.database).expanduser().absolute()
    if not source.is_file():
        raise UserError(f"no database at {source}; check the home or database_url setting")
    return source


def _copy(source: Path, target: Path) -> tuple[str, ...]:
    """Copy ``source`` into the empty file ``target``; return the target's schema revisions."""
    with closing(sqlite3.connect(source, timeout=BUSY_TIMEOUT_S)) as reading, \
            closing(sqlite3.connect(target, timeout=BUSY_TIMEOUT_S)) as writing:
        # pages=-1: one step, one read transaction. In steps, every commit by another
        # connection in between would restart the copy, and a busy database never finishes.
        reading.backup(writing, pages=-1)
        writing.execute("PRAGMA journal_mode = DELETE")
        problems = [row[0] for row in writing.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise UserError(
                f"the copy of {source} failed PRAGMA integrity_check ({'; '.join(problems[:5])}); "
                "the database itself may be damaged; nothing was written to the backup file"
            )
        if writing.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'").fetchone() is None:
            raise UserError(f"{source} is not a banana database (it has no alembic_version table); check the database_url setting")
        return tuple(sorted(row[0] for row in writing.execute("SELECT version_num FROM alembic_version")))


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
