"""Two first opens of one empty database at once: one creates the schema, the other waits and
finds it made (PostgreSQL ran both migrations side by side: UniqueViolation on alembic_version;
SQLite refused the second one's switch to WAL: 'database is locked')."""

from __future__ import annotations

import multiprocessing
import queue
import threading

import pytest
from sqlalchemy import text

from services.config import Settings
from services.database import open_database

OPENERS = 2
HANG_GUARD_SECONDS = 120  # far beyond a migration; only a deadlock gets here


def _open_and_report(url: str, home: str, start, outcomes) -> None:
    start.wait()
    try:
        open_database(Settings(home=home, database_url=url)).close()
        outcomes.put("ok")
    except Exception as error:  # reported to the test, which names it
        outcomes.put(f"{type(error).__name__}: {error}")


def _schema_revision(settings: Settings) -> list[str]:
    with open_database(settings) as db, db.reading() as session:
        return list(session.scalars(text("SELECT version_num FROM alembic_version")))


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))  # the race is lost only some of the time
def test_two_processes_opening_an_empty_database_at_once_both_open_it(backend_settings, tmp_path, attempt):
    spawn = multiprocessing.get_context("spawn")
    start, outcomes = spawn.Barrier(OPENERS), spawn.Queue()
    openers = [
        spawn.Process(
            target=_open_and_report, args=(backend_settings.database_url, str(tmp_path / "home"), start, outcomes)
        )
        for _ in range(OPENERS)
    ]
    _all_open_once(openers, outcomes, backend_settings)


@pytest.mark.parametrize("backend_settings", ["postgresql"], indirect=True)
def test_two_threads_opening_an_empty_database_at_once_both_open_it(backend_settings, tmp_path):
    # Alembic's migration context is one per process: two threads must take turns too.
    start, outcomes = threading.Barrier(OPENERS), queue.Queue()
    openers = [
        threading.Thread(
            target=_open_and_report,
            daemon=True,
            args=(backend_settings.database_url, str(tmp_path / "home"), start, outcomes),
        )
        for _ in range(OPENERS)
    ]
    _all_open_once(openers, outcomes, backend_settings)


def _all_open_once(openers, outcomes, settings):
    """Start the openers together; each must open the database, and it must hold one schema revision."""
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join(HANG_GUARD_SECONDS)
    assert not any(opener.is_alive() for opener in openers), "a first open hung"
    assert sorted(outcomes.get(timeout=10) for _ in openers) == ["ok"] * OPENERS
    assert len(_schema_revision(settings)) == 1
