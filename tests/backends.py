"""Fixtures that run a test on SQLite and on a real PostgreSQL server.

PostgreSQL tests need ``BANANA_TEST_POSTGRES_URL``: a URL of a server role allowed to
create databases, such as ``postgresql+psycopg://banana:banana@localhost:5432/postgres``
(``.ci/run`` starts a server and sets it). Without it they are skipped, unless
``BANANA_REQUIRE_POSTGRES=1`` (set by CI), where a missing server fails the run.
Each PostgreSQL test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.config import Settings
from services.database import Database, open_database

POSTGRES_URL_VARIABLE = "BANANA_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_VARIABLE = "BANANA_REQUIRE_POSTGRES"
BACKENDS = ("sqlite", "postgresql")


def _server_url() -> str:
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    if url:
        return url
    if os.environ.get(REQUIRE_POSTGRES_VARIABLE) == "1":
        pytest.fail(
            f"{POSTGRES_URL_VARIABLE} is not set but {REQUIRE_POSTGRES_VARIABLE}=1: start PostgreSQL (see .ci/run)"
        )
    pytest.skip(f"no PostgreSQL server: set {POSTGRES_URL_VARIABLE} to run this test on PostgreSQL")


def _fresh_postgres_database(server_url: str):
    name = f"banana_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings whose database is a fresh SQLite file or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield Settings(home=tmp_path / "home")
        return
    databases = _fresh_postgres_database(_server_url())
    url = next(databases)
    yield Settings(home=tmp_path / "home", database_url=url)
    databases.close()


@pytest.fixture
def backend_db(backend_settings: Settings) -> Database:
    """An open, migrated database on each backend in turn."""
    with open_database(backend_settings) as database:
        yield database
