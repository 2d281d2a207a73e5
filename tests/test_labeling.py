"""The labeling services on a small real project: asks, labels, undo, skip, model versions."""

import time
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select, update

from services.engine.lifecycle import close_engines, start_engine
from services.errors import UserError
from services.labeling.session import LabelingSession
from services.teams.leases import is_overlap
from storage.models import Annotation, ModelVersion, Pick, SelectionRun
from storage.teams.lease_models import ItemLease
from storage.types import utc_now
from tests.labeling_project import class_id, label_truly, ready_engine, true_class
from tests.labels_by_name import record_annotation


def test_asks_are_recorded_with_their_score_parts_and_labels_are_committed_at_once(engine):
    session = LabelingSession(engine, "ann")
    ask = session.current()
    assert ask.source and (ask.score_parts or ask.source == "audit")  # audit asks are uniform at random
    annotation_id = session.label(ask.item_id, [class_id(engine, true_class(ask.path))])

    with engine.db.reading() as db_session:
        pick = db_session.get(Pick, ask.pick_id)
        run = db_session.get(SelectionRun, pick.selection_run_id)
        annotation = db_session.get(Annotation, annotation_id)
        assert (pick.item_id, pick.source, pick.score_parts) == (ask.item_id, ask.source, ask.score_parts)
        assert run.strategy == "default"
        assert annotation.item_id == ask.item_id and annotation.duration_ms is not None
        assert [c.name for c in annotation.classes] == [true_class(ask.path)]
    assert session.current().item_id != ask.item_id


def test_undo_appends_a_superseding_annotation_and_asks_the_item_again(engine):
    session = LabelingSession(engine, "ann")
    first, second = label_truly(session, 2)

    assert session.undo().item_id == second.item_id
    assert session.current().item_id == second.item_id
    assert session.undo().item_id == first.item_id  # undo walks back through the session's labels

    with engine.db.reading() as db_session:
        rows = db_session.scalars(
            select(Annotation).where(Annotation.item_id == second.item_id).order_by(Annotation.id)
        ).all()
    assert len(rows) == 2 and rows[1].supersedes_id == rows[0].id and rows[1].classes == []
    assert engine.labeled_items() == []


@pytest.mark.slow
def test_skipped_items_are_not_asked_again_and_the_session_ends_when_nothing_is_left(engine):
    session = LabelingSession(engine, "ann")
    skipped = set()
    for _ in range(5):
        ask = session.current()
        skipped.add(ask.item_id)
        session.skip(ask.item_id)
    asked = []
    while (ask := session.current()) is not None:
        asked.append(ask.item_id)
        session.label(ask.item_id, [class_id(engine, true_class(ask.path))])
    assert not skipped & set(asked)
    assert len(asked) == len(set(asked)) == 24 - 5


@pytest.mark.slow
def test_labeling_with_an_unknown_class_is_refused(engine):
    session = LabelingSession(engine, "ann")
    with pytest.raises(UserError):
        session.label(session.current().item_id, [])
    with pytest.raises(UserError):
        session.label(session.current().item_id, [999])


@pytest.mark.slow
def test_retrained_model_is_saved_as_arrays_and_served_after_a_restart(engine, labeling_home):
    session = LabelingSession(engine, "ann")
    label_truly(session, 12)
    engine.retrain_now()
    assert engine.loop.wait_idle(60)
    serving = engine.serving
    assert serving.model_version_id is not None and serving.metrics["trained_labels"] == 12

    with engine.db.reading() as db_session:
        version = db_session.get(ModelVersion, serving.model_version_id)
        assert version.n_labels == 12 and version.artifact_path.endswith(".npz")
    with np.load(labeling_home / version.artifact_path, allow_pickle=False) as arrays:
        assert set(arrays.files) >= {"coef", "intercept", "classes"}

    settings, db = engine.settings, engine.db
    close_engines()
    restarted = start_engine(db, settings)
    while restarted.phase not in ("ready", "failed"):
        time.sleep(0.05)
    assert restarted.engine.serving.model_version_id == serving.model_version_id
    assert len(restarted.engine.labeled_items()) == 12


@pytest.mark.slow
def test_a_restart_serves_a_current_stored_model_without_retraining(engine):
    session = LabelingSession(engine, "ann")
    label_truly(session, 12)  # 12 >= retrain_every: one retrain on the way
    session.close()  # its queued asks go back to the pool
    engine.retrain_now()
    assert engine.loop.wait_idle(60)
    stored = engine.serving.model_version_id

    def versions():
        with engine.db.reading() as db_session:
            return db_session.scalars(select(ModelVersion.id).order_by(ModelVersion.id)).all()

    before = versions()
    close_engines()
    restarted = ready_engine(engine.db, engine.settings)
    assert restarted is not engine and restarted.loop.wait_idle(60)
    assert restarted.serving.model_version_id == stored and versions() == before  # no retrain at start

    label_truly(LabelingSession(restarted, "bob"), 10)  # labels added after the start count as usual
    assert restarted.loop.wait_idle(60)
    # A retrain came from the new labels alone: at the 10th, or earlier for a class first seen now.
    assert len(versions()) > len(before) and restarted.serving.metrics["trained_labels"] > 12


@pytest.mark.slow
def test_a_restart_retrains_when_the_stored_model_is_older_than_the_labels(engine):
    first = label_truly(LabelingSession(engine, "ann"), 3)[0]
    engine.retrain_now()
    assert engine.loop.wait_idle(60)
    close_engines()
    # A relabel while no engine ran (as from the CLI): the same number of labels, not the same labels.
    other = next(c.name for c in engine.classes.values() if c.name != true_class(first.path))
    record_annotation(engine.db, item_id=first.item_id, class_names=[other], annotator="eve")
    restarted = ready_engine(engine.db, engine.settings)
    assert restarted.loop.wait_idle(60)
    assert restarted.serving.model_version_id != engine.serving.model_version_id


@pytest.mark.slow
def test_a_closed_session_hands_its_queued_asks_to_other_labelers(engine):
    first = LabelingSession(engine, "ann")
    held = first.current().item_id
    second = LabelingSession(engine, "bob")
    assert held not in [second.current().item_id]
    first.close()
    asked = set()
    while (ask := second.current()) is not None:
        asked.add(ask.item_id)
        second.skip(ask.item_id)
    assert held in asked


@pytest.mark.slow
def test_a_session_whose_leases_lapsed_and_were_taken_over_drops_those_asks(engine):
    first = LabelingSession(engine, "ann")
    held = first.current().item_id
    with engine.db.writing() as db_session:  # as if ann had left the page for longer than the lease time
        db_session.execute(update(ItemLease).values(expires_at=utc_now() - timedelta(seconds=1)))
    second = LabelingSession(engine, "bob")
    taken = set()
    while (ask := second.current()) is not None and held not in taken:
        taken.add(ask.item_id)
        second.label(ask.item_id, [class_id(engine, true_class(ask.path))])
    assert held in taken

    with pytest.raises(UserError, match="no longer yours"):
        first.label(held, [class_id(engine, "cat")])
    assert first.current().item_id != held  # dropped at once
    first._renewed = float("-inf")  # the renewal is due: every ask bob took is dropped too
    shown = first.current()
    assert (
        shown is None or shown.item_id not in taken or is_overlap(shown)
    )  # bob's labels may come back as overlap asks


@pytest.mark.slow
def test_a_session_whose_engine_was_replaced_still_saves_a_label_without_error(engine):
    # A page left open across a pool swap answers through the closed engine; the label must
    # be stored and no background work may be scheduled on the closed engine.
    session = LabelingSession(engine, "ann")
    ask = session.current()
    engine.close()
    annotation_id = session.label(ask.item_id, [class_id(engine, true_class(ask.path))])
    with engine.db.reading() as db_session:
        assert db_session.get(Annotation, annotation_id).item_id == ask.item_id


@pytest.mark.slow
def test_a_project_on_the_int8_similarity_kernel_labels_undoes_and_retrains(labeling_home, monkeypatch):
    from core.similarity import pool_kernels
    from core.similarity.pool_kernels import Int8Kernel
    from services.config import load_settings
    from services.database import open_database

    monkeypatch.setattr(pool_kernels, "INT8_FROM_ROWS", 1)  # as a pool of 100,000 images would
    monkeypatch.setattr(Int8Kernel, "block_rows", 8)  # several packed blocks even in a small project
    settings = load_settings()
    with open_database(settings) as db:
        engine = ready_engine(db, settings)
        assert isinstance(engine._state._kernel, Int8Kernel)
        session = LabelingSession(engine, "ann")
        labeled = label_truly(session, 6)
        engine.next_asks(2, claim=lambda ids: [])  # a selection folds the new labels in
        assert session.undo().item_id == labeled[-1].item_id
        engine.next_asks(2, claim=lambda ids: [])  # ... and takes the undone one out
        engine.retrain_now()
        assert engine.loop.wait_idle(60) and engine.serving.probe is not None
        label_truly(session, 3)
        assert len(engine.next_asks(2, claim=lambda ids: ids)) == 2  # asks from the int8 state and the new probe
        state = engine._state
        rows = np.flatnonzero(state.labeled_)
        assert len(rows) == len(engine.labeled_items()) == 8
        # The state kept up incrementally equals a full recompute from its labels, bit for bit.
        labels = state._pair_classes
        fresh = type(state)(engine.pool.embeddings, kernel="int8").refresh(state._pair_rows, labels)
        np.testing.assert_array_equal(fresh.nearest_similarity_, state.nearest_similarity_)
        np.testing.assert_array_equal(fresh.class_similarity_, state.class_similarity_)
        close_engines()
