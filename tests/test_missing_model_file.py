"""A model version whose file is gone (a database restored into a new home) does not stop the
project from opening: it is logged and a new model is trained from the labels."""

import logging

import pytest

from services.engine.lifecycle import close_engines
from services.engine.model_store import load_latest_model
from tests.labeling_project import ready_engine
from tests.test_slices import label_truly, retrain

pytestmark = pytest.mark.slow


def test_a_project_whose_model_file_is_missing_opens_and_retrains_from_its_labels(engine, caplog):
    label_truly(engine, 12)
    lost = retrain(engine)
    classes = engine.serving.probe.classes_.tolist()
    db, settings, project_id = engine.db, engine.settings, engine.project_id
    close_engines()
    for artifact in (settings.home / "models").rglob("*.npz"):
        artifact.unlink()

    with caplog.at_level(logging.WARNING, logger="services.engine.model_store"):
        assert load_latest_model(db, settings, project_id=project_id, backbone_key=engine.pool.backbone_key) is None
        restarted = ready_engine(db, settings)
    assert f"model version {lost} of project {project_id}" in caplog.text and "is missing" in caplog.text
    assert restarted.loop.wait_idle(120)
    assert restarted.serving.model_version_id not in (None, lost)
    assert restarted.serving.probe.classes_.tolist() == classes
