"""Each project gets a backbone chosen from what this machine has, recorded once, shown, and
switchable with every label kept."""

from dataclasses import replace
from pathlib import Path

import pytest

from core.features.backbones import BUNDLED_PATH
from services.database import open_database
from services.engine.lifecycle import GrowthConfig, close_engines, grow_pool
from services.errors import UserError
from services.features.project_backbone import PHOTO_BACKBONE, default_backbone, project_backbone, set_project_backbone
from services.labeling.session import LabelingSession
from storage.labels import label_queries
from tests.labeling_project import ingested_sample_project, label_truly, ready_engine
from tests.test_pool_growth import wait_for

FAST = GrowthConfig(check_seconds=0, retire_seconds=1, retry_seconds=0)


def only(*names):
    return lambda name: name in names


def test_a_fetched_self_supervised_backbone_comes_first_even_for_tiny_images():
    choice = default_backbone([32] * 10, available=only("bundled", PHOTO_BACKBONE, "dino_vits16"))
    assert choice.name == "dino_vits16" and choice.source == "default"


def test_photos_get_the_photo_backbone_and_tiny_images_the_bundled_one():
    available = only("bundled", PHOTO_BACKBONE)
    assert default_backbone([375, 500, 333], available=available).name == PHOTO_BACKBONE
    assert default_backbone([32, 32, 32], available=available).name == "bundled"


def test_photos_without_a_photo_backbone_get_bundled_with_the_fetch_command():
    choice = default_backbone([480] * 5, available=only("bundled"))
    assert choice.name == "bundled" and "fetch-backbone" in choice.reason


def test_a_project_without_images_has_a_provisional_choice():
    assert default_backbone([], available=only("bundled", PHOTO_BACKBONE)).source == "provisional"


@pytest.fixture
def sample_settings(tmp_path: Path):
    return ingested_sample_project(tmp_path, per_class=2)


def test_the_choice_is_recorded_once_and_every_later_reader_gets_it(sample_settings):
    with open_database(sample_settings) as db:
        first = project_backbone(db, sample_settings, "default", available=only("bundled"))
        # This machine has fetched an SSL backbone since: the recorded choice still holds.
        later = project_backbone(db, sample_settings, "default", available=only("bundled", "dinov2_vits14"))
    assert first.name == later.name == "bundled" and "tiny" in later.reason


def test_the_environment_overrides_the_project(sample_settings):
    with open_database(sample_settings) as db:
        choice = project_backbone(db, replace(sample_settings, backbone="efficientnet_lite0"), "default")
    assert choice.name == "efficientnet_lite0" and choice.source == "environment"


def test_setting_a_backbone_records_who_and_refuses_unknown_names(sample_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    with open_database(sample_settings) as db:
        assert set_project_backbone(db, "default", PHOTO_BACKBONE, by="ann")
        assert not set_project_backbone(db, "default", PHOTO_BACKBONE, by="ann")
        choice = project_backbone(db, sample_settings, "default")
        with pytest.raises(UserError, match="no_such_net"):
            set_project_backbone(db, "default", "no_such_net", by="ann")
        with pytest.raises(UserError, match="fetch-backbone"):  # published, weights not on this machine
            set_project_backbone(db, "default", "dino_resnet50", by="ann")
    assert (choice.name, choice.source, choice.set_by) == (PHOTO_BACKBONE, "set", "ann")


@pytest.mark.slow
def test_switching_the_backbone_re_embeds_in_the_background_and_keeps_every_label(tmp_path: Path):
    settings = ingested_sample_project(tmp_path, per_class=3)
    with open_database(settings) as db:
        try:
            old = ready_engine(db, settings)
            label_truly(LabelingSession(old, "ann"), 5)
            switched_to = f"local:{BUNDLED_PATH}"  # other weights' identity, same fast network
            assert set_project_backbone(db, "default", switched_to, by="admin")
            startup = grow_pool(db, settings, config=FAST)
            assert startup.switching == switched_to
            assert wait_for(lambda: grow_pool(db, settings, config=FAST).switching is None)
            new = startup.engine
            assert new is not old and startup.backbone == switched_to and startup.growth_error is None
            assert new.pool.backbone_key != old.pool.backbone_key
            assert sorted(new.labeled_items()) == sorted(old.labeled_items()) and len(new.labeled_items()) == 5
            with db.reading() as session:
                assert len(label_queries.current_labels(session, new.project_id)) == 5
        finally:
            close_engines()
