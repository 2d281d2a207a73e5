"""For tests that hold one writer's transaction open while a second writer tries to write."""

from __future__ import annotations

import threading
import time

from sqlalchemy import text


def in_a_thread(action) -> tuple[threading.Thread, list]:
    """Run ``action`` in a (not yet started) thread; return the thread and a list that gets its result or error."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(action())
        except BaseException as error:  # noqa: BLE001 - asserted by the callers
            outcome.append(error)

    return threading.Thread(target=run, daemon=True), outcome


def wait_until_a_writer_waits(db, thread: threading.Thread | None = None) -> None:
    """Return once another writer waits for a transaction this test holds open, or ``thread`` has ended.

    PostgreSQL: a transaction waiting on a lock (``pg_stat_activity``). SQLite shows no waiting
    writer, so there: a writer waiting for its turn in the database's writer queue (this process).
    """
    deadline = time.monotonic() + 30

    def running() -> bool:
        assert time.monotonic() < deadline, "the second writer neither finished nor waited on a lock"
        return thread is None or thread.is_alive()

    if db.engine.dialect.name != "postgresql":
        while running() and not db._writer_queue._waiting:
            time.sleep(0.01)
        return
    with db.engine.connect() as connection:
        while running() and not connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ):
            time.sleep(0.01)
            connection.rollback()  # a fresh snapshot of pg_stat_activity
