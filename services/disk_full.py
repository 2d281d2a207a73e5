"""A full disk, said plainly: what could not be written, and where to free space."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from sqlalchemy import URL
from sqlalchemy.exc import DBAPIError

from services.errors import UserError

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)  # no space left; disk quota used up
SQLITE_FULL = "database or disk is full"
POSTGRES_DISK_FULL = "53100"  # SQLSTATE disk_full


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` says the disk (or the quota) is full: an OSError, SQLite's or PostgreSQL's error,
    bare or wrapped by SQLAlchemy."""
    if isinstance(error, DBAPIError) and error.orig is not None:
        error = error.orig
    if isinstance(error, OSError):
        return error.errno in DISK_FULL_ERRNOS
    if isinstance(error, sqlite3.OperationalError):
        return SQLITE_FULL in str(error)
    return getattr(error, "sqlstate", None) == POSTGRES_DISK_FULL


def _reason(error: BaseException) -> BaseException:
    if isinstance(error, DBAPIError) and error.orig is not None:
        return error.orig  # without SQLAlchemy's statement dump
    return error


def file_system_of(path: Path) -> Path:
    """The mount point of the file system that holds ``path`` (or would hold it)."""
    path = Path(os.path.realpath(path))
    while not path.exists():
        path = path.parent
    while not os.path.ismount(path):
        path = path.parent
    return path


def disk_full_error(path: Path, error: BaseException, *, rerun: str) -> UserError:
    """The error for a write to ``path`` that found the disk full; ``rerun`` is the command that
    finishes the work once there is space."""
    return UserError(
        f"{path}: the disk is full ({_reason(error)}); free space on {file_system_of(path)}, then run {rerun} "
        "again (what was written before is kept)"
    )


def database_full_error(url: URL, error: BaseException, *, rerun: str) -> UserError:
    """The error for a database write that found the disk full: a SQLite file is a path here; a
    server's disk is the server's."""
    if url.get_backend_name() == "sqlite" and url.database is not None and url.database not in ("", ":memory:"):
        return disk_full_error(Path(url.database), error, rerun=rerun)
    return UserError(
        f"database {url.database} on {url.host}: the disk is full ({_reason(error)}); free space on the "
        f"database server's disk, then run {rerun} again (what was written before is kept)"
    )
