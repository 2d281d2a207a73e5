"""Shared fixtures: every test gets its own BANANA_HOME and database."""

from pathlib import Path

import pytest

from services.config import Settings
from services.database import Database, open_database


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def db(settings: Settings) -> Database:
    with open_database(settings) as database:
        yield database
