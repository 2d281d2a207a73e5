"""The app waits while another process writes its embeddings (a CLI `embed` run) instead of failing to start."""

import pytest

from core.features.backbones import identify_backbone
from services.config import load_settings
from services.database import open_database
from services.engine import lifecycle as engines
from services.engine.lifecycle import close_engines
from services.features.embeddings import embed, embeddings_folder
from services.projects import get_project
from tests.embedding_helpers import store_held_elsewhere
from tests.labeling_project import ready_engine

pytestmark = pytest.mark.slow


def test_the_app_starts_once_another_process_has_finished_writing_the_embeddings(labeling_home, tmp_path, monkeypatch):
    settings = load_settings()
    release = tmp_path / "release"

    def embed_letting_the_holder_go_once_waiting(*args, **kwargs):
        return embed(*args, **kwargs, on_wait=lambda folder: release.touch())

    monkeypatch.setattr(engines, "embed", embed_letting_the_holder_go_once_waiting)
    with open_database(settings) as db:
        folder = embeddings_folder(settings, get_project(db, "default"), identify_backbone("bundled").key)
        with store_held_elsewhere("bundled", folder, release):
            engine = ready_engine(db, settings)  # fails if the start gave up on the busy store
            assert release.exists()  # the start waited, and was ready only after the holder was let go
        assert len(engine.pool.item_ids) > 0
        close_engines()
