"""The app says when the features, not the labels, limit the model, and names what to do."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image

from services.config import Settings
from services.database import open_database
from services.engine.lifecycle import close_engines
from services.features.feature_warning import feature_warning
from services.features.project_backbone import set_project_backbone
from services.ingest.ingest import ingest
from services.labeling.classes import add_label_class
from services.projects import get_project
from tests.app_helpers import open_page
from tests.labeling_project import ingested_sample_project, ready_engine, true_class
from tests.labels_by_name import record_annotation

pytestmark = pytest.mark.slow


def photo_project(base: Path):
    """Settings of a project of 12 generated 320x240 'photos' in 2 classes, on the bundled backbone."""
    rng = np.random.default_rng(0)
    for name in ("red", "blue"):
        (base / "images" / name).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(base / "images" / name / f"{i}.jpg")
    settings = Settings(home=base / "home")
    with open_database(settings) as db:
        ingest(db, settings, source=base / "images", project="photos")
        set_project_backbone(db, "photos", "bundled", by="test")  # as a machine without a photo backbone
        for name in ("red", "blue"):
            add_label_class(db, project=get_project(db, "photos"), name=name)
    return settings


def test_bundled_features_on_photos_get_the_warning_before_any_label(tmp_path):
    settings = photo_project(tmp_path)
    with open_database(settings) as db:
        try:
            engine = ready_engine(db, replace(settings, project="photos"))
            warning = feature_warning(engine)
        finally:
            close_engines()
    assert warning is not None and warning.cause == "mismatch"
    assert "fetch-backbone" in warning.text and "ssl-train" in warning.text and "240 px" in warning.text


def label_all(db, engine, truth) -> None:
    for item, path in zip(engine.pool.item_ids.tolist(), engine.pool.paths):
        record_annotation(db, item_id=item, class_names=[truth(path)], annotator="ann")


@pytest.fixture
def sample_engine(tmp_path, monkeypatch):
    settings = ingested_sample_project(tmp_path, per_class=15)  # 60 tiny CIFAR images of 4 classes
    monkeypatch.setenv("BANANA_HOME", str(settings.home))  # the pages read the same project
    st.cache_resource.clear()
    with open_database(settings) as db:
        yield db, ready_engine(db, settings)
        close_engines()
    st.cache_resource.clear()


def test_tiny_images_labeled_truly_get_no_warning(sample_engine):
    db, engine = sample_engine
    label_all(db, engine, true_class)
    assert feature_warning(engine) is None


def test_labels_the_features_cannot_tell_apart_get_the_measured_warning(sample_engine):
    db, engine = sample_engine
    names = [c.name for c in engine.active_classes()]
    shuffled = dict(
        zip(engine.pool.paths, np.random.default_rng(3).permutation(np.resize(names, len(engine.pool.paths))))
    )
    label_all(db, engine, shuffled.get)
    warning = feature_warning(engine)
    assert warning is not None and warning.cause == "measured" and warning.strength.n_labels == 60
    assert "chance is 25%" in warning.text and "fetch-backbone" in warning.text


def test_the_label_page_and_the_dashboard_show_the_warning(sample_engine):
    db, engine = sample_engine
    names = [c.name for c in engine.active_classes()]
    shuffled = dict(
        zip(engine.pool.paths, np.random.default_rng(3).permutation(np.resize(names, len(engine.pool.paths))))
    )
    label_all(db, engine, shuffled.get)
    for page in (None, "pages/dashboard.py", "pages/label_issues.py", "pages/classes.py"):
        app = open_page(page)
        assert any("features look weak" in w.value for w in app.warning), page
