"""Images ingested while an engine runs join its pool without a restart, and no label is lost."""

import shutil
import threading
import time
from pathlib import Path

import pytest
import streamlit as st

from services.database import open_database
from services.engine import lifecycle as engines
from services.engine.lifecycle import GrowthConfig, close_engines, grow_pool
from services.ingest.ingest import ingest
from services.labeling.session import LabelingSession
from storage.labels import label_queries
from storage.labels.label_queries import CurrentLabel
from tests.app_helpers import open_page
from tests.labeling_project import (
    CLASSES,
    SAMPLE_IMAGES,
    class_id,
    ingested_sample_project,
    label_truly,
    ready_engine,
    true_class,
)
from tests.labels_by_name import record_annotation

pytestmark = pytest.mark.slow

# Checked at every call; a replaced engine serves its sessions a few seconds more.
FAST = GrowthConfig(check_seconds=0, retire_seconds=3, retry_seconds=0)


def wait_for(condition, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def add_sample_images(base: Path, start: int, stop: int) -> None:
    """Copy sample images ``start:stop`` of each class under ``base/images``, beside the ingested ones."""
    for name in CLASSES:
        for source in sorted((SAMPLE_IMAGES / name).iterdir())[start:stop]:
            shutil.copy(source, base / "images" / name / source.name)


def label_everything(session) -> set[int]:
    """Label every ask the session has (bounded); return the items asked."""
    asked = set()
    for _ in range(100):
        ask = session.current()
        if ask is None:
            return asked
        session.label(ask.item_id, [class_id(session.engine, true_class(ask.path))])
        asked.add(ask.item_id)
    raise AssertionError("the session kept asking")


@pytest.fixture
def small_project(tmp_path: Path):
    """A running engine over 3 sample images of each class, with its settings and database."""
    settings = ingested_sample_project(tmp_path, per_class=3)
    with open_database(settings) as db:
        yield tmp_path, settings, db, ready_engine(db, settings)
        close_engines()


def test_a_large_project_asks_after_a_first_share_is_embedded_and_the_rest_joins(tmp_path, monkeypatch):
    monkeypatch.setattr(engines, "COLD_START_IMAGES", 5)
    settings = ingested_sample_project(tmp_path, per_class=3)  # 12 images
    with open_database(settings) as db:
        first = ready_engine(db, settings)
        try:
            assert 0 < len(first.pool.item_ids) <= 5  # asking already, over a share of the folder
            assert {true_class(path) for path in first.pool.paths} == set(CLASSES)  # every folder in it
            label_truly(LabelingSession(first, "ann"), 2)
            startup = grow_pool(db, settings, config=FAST)  # the page run after the start
            assert wait_for(lambda: startup.growing is None and len(startup.engine.pool.item_ids) == 12)
            assert len(startup.engine.labeled_items()) == 2  # every label kept
        finally:
            close_engines()


def database_labels(db, engine):
    with db.reading() as session:
        return label_queries.current_labels(session, engine.project_id)


def test_new_images_join_the_running_engine_and_every_label_is_kept(small_project, monkeypatch):
    base, settings, db, old = small_project
    session = LabelingSession(old, "ann")
    before = label_truly(session, 4)
    startup = grow_pool(db, settings, config=FAST)
    assert startup.engine is old and startup.growing is None  # up to date: nothing to do

    add_sample_images(base, 3, 6)
    ingest(db, settings, source=base / "images", project="default")

    # A label given at the old engine after the fresh engine read the labels, before the swap.
    during, growing = [], []
    build_engine = engines.build_engine

    def build_then_label(*args):
        fresh = build_engine(*args)
        growing.append(startup.growing)
        during.extend(label_truly(session, 1))
        return fresh

    monkeypatch.setattr(engines, "build_engine", build_then_label)
    # The old engine retires retire_seconds after the swap and only labels given before that are
    # caught up; hold its retirement until the old session's label below is given, so a stall of
    # this test past retire_seconds (a loaded machine) cannot turn it into a label given later.
    old_session_labeled, retire = threading.Event(), engines._retire

    def retire_after_the_old_sessions_label(*args):
        old_session_labeled.wait(60)
        retire(*args)

    monkeypatch.setattr(engines, "_retire", retire_after_the_old_sessions_label)
    assert grow_pool(db, settings, config=FAST) is startup
    assert wait_for(lambda: startup.growing is None)
    assert growing == [12]
    new = startup.engine
    assert new is not old and startup.growth_error is None
    new_ids = set(new.pool.item_ids.tolist()) - set(old.pool.item_ids.tolist())
    assert len(new_ids) == 12 and len(new.pool.item_ids) == 24

    for ask in before + during:
        assert new.current_label(ask.item_id).class_ids == (class_id(new, true_class(ask.path)),)
    assert sorted(new.labeled_items()) == sorted(database_labels(db, new))

    # The old session still works until it is replaced; its labels reach the new engine.
    after = label_truly(session, 1)[0]
    old_session_labeled.set()
    assert wait_for(lambda: new.current_label(after.item_id) is not None)
    assert wait_for(lambda: not engines._retiring)  # closed after the grace period

    session.close()  # as app/user_state.labeling_session does once its engine was replaced: leases go back
    asked = label_everything(LabelingSession(new, "bob"))
    assert new_ids <= asked
    assert set(database_labels(db, new)) == set(new.pool.item_ids.tolist())
    assert set(new.labeled_items()) == set(new.pool.item_ids.tolist())


def test_a_label_given_through_the_replaced_engine_after_it_retired_reaches_the_new_one(small_project):
    base, settings, db, old = small_project
    session = LabelingSession(old, "ann")
    shown = session.current()  # on screen while the pool grows; answered after the old engine retired
    add_sample_images(base, 3, 4)
    ingest(db, settings, source=base / "images", project="default")
    startup = grow_pool(db, settings, config=FAST)
    assert wait_for(lambda: startup.growing is None) and startup.engine is not old
    assert wait_for(lambda: not engines._retiring) and old.closed

    session.label(shown.item_id, [class_id(old, true_class(shown.path))])

    new = startup.engine
    assert new.current_label(shown.item_id).class_ids == (class_id(new, true_class(shown.path)),)
    session.close()


def test_a_failed_growth_keeps_the_engine_serving_and_says_why(small_project, monkeypatch):
    base, settings, db, old = small_project
    add_sample_images(base, 3, 4)
    ingest(db, settings, source=base / "images", project="default")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(engines, "embed", broken)
    startup = grow_pool(db, settings, config=FAST)
    assert wait_for(lambda: startup.growing is None)
    assert startup.engine is old and "disk full" in startup.growth_error

    monkeypatch.undo()
    grow_pool(db, settings, config=FAST)
    assert wait_for(lambda: startup.growing is None and startup.engine is not old)
    assert startup.growth_error is None and len(startup.engine.pool.item_ids) == 16


def test_a_label_written_elsewhere_reaches_the_engine_and_an_older_one_never_replaces_it(small_project):
    _, _, db, engine = small_project
    first = label_truly(LabelingSession(engine, "ann"), 1)[0]
    other = next(name for name in CLASSES if name != true_class(first.path))
    annotation_id = record_annotation(db, item_id=first.item_id, class_names=[other], annotator="eve")
    assert engine.current_label(first.item_id) == CurrentLabel(annotation_id, (class_id(engine, other),))
    assert engine.sync() == 0  # already taken when it was written
    assert (
        engine.take_labels(
            {first.item_id: CurrentLabel(annotation_id - 1, (class_id(engine, true_class(first.path)),))}
        )
        == 0
    )
    assert engine.current_label(first.item_id).annotation_id == annotation_id


def test_the_app_notes_new_images_in_the_sidebar_while_they_are_added(small_project, monkeypatch):
    base, settings, db, old = small_project
    monkeypatch.setenv("BANANA_HOME", str(settings.home))
    for variable in ("BANANA_CONFIG", "BANANA_DATABASE_URL", "BANANA_PROJECT", "BANANA_BACKBONE"):
        monkeypatch.delenv(variable, raising=False)
    st.cache_resource.clear()
    add_sample_images(base, 3, 5)
    ingest(db, settings, source=base / "images", project="default")
    release, embed = threading.Event(), engines.embed

    def held_embed(*args, **kwargs):
        release.wait(60)
        return embed(*args, **kwargs)

    monkeypatch.setattr(engines, "embed", held_embed)
    app = open_page()
    assert "Adding 8 new images…" in [caption.value for caption in app.sidebar.caption]
    assert app.session_state["labeling_session"].engine is old

    release.set()
    startup = engines.start_engine(db, settings)
    assert wait_for(lambda: startup.growing is None)
    app.run()
    assert not app.exception
    assert not any("new images" in caption.value for caption in app.sidebar.caption)
    assert app.session_state["labeling_session"].engine is startup.engine is not old
    st.cache_resource.clear()
