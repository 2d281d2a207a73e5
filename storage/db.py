"""Engines and sessions, with the SQLite settings that keep labels safe."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

# Execution option that marks a connection as read-only, so it may begin DEFERRED.
READ_ONLY_OPTION = "banana_read_only"
JOURNAL_MODE_RETRY_SECONDS = 0.01


@dataclass(frozen=True)
class SqlitePragmas:
    """Per-connection SQLite settings.

    WAL lets readers run beside the one writer; ``synchronous=FULL`` makes a
    commit survive power loss, not only a process crash; the busy timeout
    makes a second writer wait instead of failing with "database is locked".
    """

    journal_mode: str = "WAL"
    synchronous: str = "FULL"
    busy_timeout_ms: int = 10_000
    foreign_keys: str = "ON"


def create_engine_for_url(url: str, *, pragmas: SqlitePragmas = SqlitePragmas()) -> Engine:
    """Create an engine for any SQLAlchemy URL.

    For SQLite every new connection gets ``pragmas``, and every transaction
    begins with ``BEGIN IMMEDIATE`` (taking the write lock up front, so two
    writers queue on the busy timeout instead of deadlocking on lock upgrade)
    unless the connection carries the ``banana_read_only`` execution option,
    which begins a plain deferred transaction. This is the pysqlite recipe from
    the SQLAlchemy SQLite documentation: pysqlite's own BEGIN is switched off
    and SQLAlchemy emits BEGIN itself.

    Other databases (PostgreSQL) are servers that may restart or drop idle
    connections, so a pooled connection is tested before each use
    (``pool_pre_ping``) and replaced if it has died.

    Parameters
    ----------
    url : str
        SQLAlchemy database URL.
    pragmas : SqlitePragmas
        Connection settings for SQLite; ignored for other databases.

    Returns
    -------
    sqlalchemy.Engine
    """
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url)
        _configure_sqlite(engine, pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _configure_sqlite(engine: Engine, pragmas: SqlitePragmas) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _connection_record) -> None:
        dbapi_connection.isolation_level = None  # pysqlite must not emit its own BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(pragmas.busy_timeout_ms)}")
        _set_journal_mode(cursor, pragmas)
        cursor.execute(f"PRAGMA synchronous = {pragmas.synchronous}")
        cursor.execute(f"PRAGMA foreign_keys = {pragmas.foreign_keys}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _set_journal_mode(cursor, pragmas: SqlitePragmas) -> None:
    """Switch the database to ``pragmas.journal_mode`` unless it is in it already (WAL is stored
    in the file). The first connections to a new database race to switch it, and SQLite refuses
    the switch at once, without waiting its busy timeout, while another connection holds a lock
    ('database is locked'): so the switch is retried until the busy timeout."""
    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == pragmas.journal_mode.lower():
        return
    deadline = time.monotonic() + pragmas.busy_timeout_ms / 1000
    while True:
        try:
            cursor.execute(f"PRAGMA journal_mode = {pragmas.journal_mode}")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(JOURNAL_MODE_RETRY_SECONDS)


def make_session_factories(engine: Engine) -> tuple[sessionmaker[Session], sessionmaker[Session]]:
    """Return ``(write_sessions, read_sessions)`` bound to ``engine``.

    Read sessions begin deferred on SQLite and so never wait for a writer.
    """
    write_sessions = sessionmaker(engine, expire_on_commit=False)
    read_sessions = sessionmaker(engine.execution_options(**{READ_ONLY_OPTION: True}), expire_on_commit=False)
    return write_sessions, read_sessions
