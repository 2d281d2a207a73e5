"""A restarted engine (app restart, headless select, new images) keeps the project's probability
calibration: its first model warm-starts from the stored one, temperature included, so margin-based
thresholds (the Triage report's near-failures) mean the same from one model version to the next."""

import pytest

from services.engine.lifecycle import close_engines
from tests.labeling_project import ready_engine
from tests.test_slices import label_truly, retrain

pytestmark = pytest.mark.slow


def test_the_first_model_after_a_restart_keeps_the_last_calibration(engine):
    label_truly(engine, 12)
    retrain(engine)
    label_truly(engine, 2)
    retrain(engine)  # calibrated with the first version's out-of-fold fits
    calibrated = engine.serving
    assert "oof_labels" in calibrated.metrics and calibrated.probe.temperature_ != 1.0
    db, settings = engine.db, engine.settings
    close_engines()

    restarted = ready_engine(db, settings)
    assert restarted.serving.model_version_id == calibrated.model_version_id
    label_truly(restarted, 1)
    retrain(restarted)

    assert restarted.serving.probe.temperature_ == calibrated.probe.temperature_
