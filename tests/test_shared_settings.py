"""Settings that every server must agree on live in the database, not in files beside one server."""

import json

import numpy as np
import pytest

from services.database import open_database
from services.shared_settings import SELECTION, TEAM, import_setting_files, read_setting
from services.teams.leases import TeamSettings, read_team_settings, save_team_settings


def test_a_strategy_chosen_on_one_server_is_used_by_another_after_its_next_poll(engine):
    with open_database(engine.settings) as other_server:
        engine.set_selection("margin", audit_share=0.0, by="admin")
        assert read_setting(other_server, engine.project_id, SELECTION)["strategy"] == "margin"
    engine.selection = engine.selection.__class__()  # as a server that started before the change
    engine.sync()
    assert engine.selection.strategy == "margin" and engine.selection.config.audit_share == 0.0


def test_team_settings_saved_through_one_database_handle_are_read_through_another(engine):
    save_team_settings(engine.db, engine.project_id, TeamSettings(lease_seconds=120, overlap_share=0.5), by="admin")
    with open_database(engine.settings) as other_server:
        assert read_team_settings(other_server, engine.project_id) == TeamSettings(lease_seconds=120, overlap_share=0.5)


def test_settings_files_of_earlier_versions_move_into_the_database_once(engine):
    folder = engine.settings.home / "projects" / f"project-{engine.project_id}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "team.json").write_text(json.dumps({"lease_seconds": 300, "overlap_share": 0.1}))
    (folder / "selection.json").write_text(json.dumps({"strategy": "margin", "config": {}}))
    save_team_settings(engine.db, engine.project_id, TeamSettings(lease_seconds=60))  # newer, in the database

    import_setting_files(engine.db, engine.settings, engine.project_id)

    assert read_team_settings(engine.db, engine.project_id).lease_seconds == 60  # the database's value wins
    assert read_setting(engine.db, engine.project_id, SELECTION)["strategy"] == "margin"
    assert not (folder / "team.json").exists() and (folder / "team.json.imported").exists()
    assert read_setting(engine.db, engine.project_id, TEAM) is not None


def test_the_pool_cannot_be_changed_in_place(engine):
    with pytest.raises(ValueError):
        engine.pool.embeddings[0, 0] = np.float32(1)
    with pytest.raises(ValueError):
        engine.pool.item_ids[0] = 0
