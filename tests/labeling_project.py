"""A small real project for the labeling tests: 24 sample images of 4 classes, ingested and
embedded with the bundled backbone once per test run, copied fresh for each test."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import streamlit as st

from core.features.extract import ExtractConfig
from services.config import Settings, load_settings
from services.database import open_database
from services.engine.lifecycle import close_engines, start_engine
from services.features.embeddings import embed
from services.ingest.ingest import ingest
from services.labeling.classes import add_label_class
from services.projects import get_project, set_multi_label

SAMPLE_IMAGES = Path(__file__).resolve().parents[1] / "sample_data" / "images"
CLASSES = ("airplane", "cat", "frog", "truck")
PER_CLASS = 6


def true_class(path: str) -> str:
    """The sample images sit in folders named after their class."""
    return path.split("/")[0]


def ingested_sample_project(base: Path, *, classes=CLASSES, per_class=PER_CLASS) -> Settings:
    """Copy ``per_class`` sample images of each class under ``base/images``, ingest them into
    project "default" of ``base/home`` and add the classes; returns the settings."""
    for name in classes:
        (base / "images" / name).mkdir(parents=True)
        for source in sorted((SAMPLE_IMAGES / name).iterdir())[:per_class]:
            shutil.copy(source, base / "images" / name / source.name)
    settings = Settings(home=base / "home")
    with open_database(settings) as db:
        ingest(db, settings, source=base / "images", project="default")
        project = get_project(db, "default")
        for name in classes:
            add_label_class(db, project=project, name=name)
    return settings


@pytest.fixture(scope="session")
def labeling_template(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("labeling-template")
    settings = ingested_sample_project(base)
    with open_database(settings) as db:
        embed(db, settings, project="default", backbone="bundled", config=ExtractConfig(num_workers=0))
    return base


@pytest.fixture
def labeling_home(labeling_template: Path, tmp_path: Path, monkeypatch) -> Path:
    """BANANA_HOME with the project's database and embeddings (the images stay in the template)."""
    home = tmp_path / "home"
    shutil.copytree(labeling_template / "home", home)
    monkeypatch.setenv("BANANA_HOME", str(home))
    for variable in ("BANANA_CONFIG", "BANANA_DATABASE_URL", "BANANA_PROJECT"):
        monkeypatch.delenv(variable, raising=False)
    st.cache_resource.clear()
    yield home
    close_engines()
    st.cache_resource.clear()


def ready_engine(db, settings):
    """The project's engine (started by this call or earlier, by a test or the app) once it is ready."""
    startup = start_engine(db, settings)
    deadline = time.monotonic() + 60
    while startup.phase not in ("ready", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert startup.phase == "ready", startup.error
    return startup.engine


def multi_label_engine(engine):
    """The sample project switched to multi-label, with its engine restarted."""
    assert set_multi_label(engine.db, engine.project_name, True)
    close_engines()
    restarted = ready_engine(engine.db, engine.settings)
    assert restarted.multi_label
    return restarted


@pytest.fixture
def engine(labeling_home: Path):
    """The project's running engine."""
    settings = load_settings()
    with open_database(settings) as db:
        yield ready_engine(db, settings)
        close_engines()


def class_id(engine, name: str) -> int:
    return next(c.id for c in engine.classes.values() if c.name == name)


def label_truly(session, n: int) -> list:
    """Answer the session's next ``n`` asks with each image's true class; return the asks."""
    labeled = []
    for _ in range(n):
        ask = session.current()
        session.label(ask.item_id, [class_id(session.engine, true_class(ask.path))])
        labeled.append(ask)
    return labeled
