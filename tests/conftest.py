"""Shared fixtures: every test gets its own BANANA_HOME and database."""

from pathlib import Path

import pytest

from services.config import Settings
from services.database import Database, open_database

# Fixtures of a small embedded project (labeling_template, labeling_home, engine).
pytest_plugins = ["tests.labeling_project", "tests.backends"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def db(settings: Settings) -> Database:
    with open_database(settings) as database:
        yield database


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh BANANA_HOME for code that reads settings from the environment (the CLI, the app)."""
    monkeypatch.setenv("BANANA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache
    for name in ("BANANA_CONFIG", "BANANA_DATABASE_URL", "BANANA_BACKBONE", "BANANA_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The PostgreSQL variant of every two-backend test carries the ``postgres`` marker."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "postgresql" in callspec.params.values():
            item.add_marker(pytest.mark.postgres)
