"""Shared fixtures: every test gets its own BANANA_HOME and database."""

from pathlib import Path

import pytest

from services.config import Settings
from services.database import Database, open_database

# Fixtures of a small embedded project (labeling_template, labeling_home, engine).
pytest_plugins = ["tests.labeling_project"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def db(settings: Settings) -> Database:
    with open_database(settings) as database:
        yield database
