"""Open the configured database and hand out one short session per user action."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from services.config import Settings
from storage.db import SqlitePragmas, create_engine_for_url, make_session_factories
from storage.schema import upgrade_to_head
from storage.writer_queue import WriterQueue


class Database:
    """An open database: an engine and factories for short sessions.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        Engine whose database already has the newest schema.
    """

    def __init__(self, *, engine: Engine) -> None:
        self.engine = engine
        self._write_sessions, self._read_sessions = make_session_factories(engine)
        # SQLite wakes waiting writers in no order; this process's writers take turns first.
        sqlite = engine.dialect.name == "sqlite"
        self._writer_queue = WriterQueue(timeout_s=SqlitePragmas().busy_timeout_ms / 1000) if sqlite else None

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """Yield a session in a write transaction; commit on success, roll back on error."""
        with self._writer_queue.turn() if self._writer_queue is not None else nullcontext():
            with self._write_sessions.begin() as session:
                yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """Yield a session for reads; it never waits for a writer and is rolled back at the end."""
        with self._read_sessions() as session:
            yield session

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_database(settings: Settings) -> Database:
    """Open ``settings.database_url``, creating or upgrading its schema.

    Parameters
    ----------
    settings : Settings

    Returns
    -------
    Database
    """
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database is not None and url.database not in ("", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine_for_url(settings.resolved_database_url)
    upgrade_to_head(engine)
    return Database(engine=engine)
