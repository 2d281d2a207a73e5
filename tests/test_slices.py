"""Failure slices: the neighbourhood rule, re-mining of planted new members, per-version metrics."""

import numpy as np
import pytest

from core.model.probe import LinearProbe
from core.quality.slices import (
    SliceConfig,
    accuracy,
    heldout_member_predictions,
    remine,
    similarity_to_examples,
    threshold_for_k,
    uncertainty_of,
)
from services.data_engine.slices import create_slice, measure, project_slices
from services.engine import after_model
from services.errors import UserError
from services.labeling.session import LabelingSession
from tests.labeling_project import class_id, multi_label_engine, true_class

DIM = 32


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def pool_with_a_region(seed):
    """300 items around three directions; a small region of 20 items around a fourth
    direction ``r``; returns the pool, the region's positions and ``r``."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(4, DIM)))
    y = rng.integers(0, 3, 300)
    pool = unit(centres[y] + 0.12 * rng.normal(size=(300, DIM)))
    region = unit(centres[3] + 0.12 * rng.normal(size=(20, DIM)))
    return np.concatenate([pool, region]), np.arange(300, 320), centres[3], rng


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_remining_finds_planted_new_members_first_and_nothing_far(seed):
    pool, region, r, rng = pool_with_a_region(seed)
    examples = pool[region[:3]]
    threshold = threshold_for_k(similarity_to_examples(pool, examples), 20)
    members = similarity_to_examples(pool, examples) >= threshold
    assert members.sum() == 20 and members[region].mean() >= 0.9  # the rule finds the region

    # Every old member gets labeled; then new data arrives: 6 items near the examples, 30 elsewhere.
    planted = unit(r + 0.08 * rng.normal(size=(6, DIM)))
    elsewhere = unit(pool[rng.choice(300, 30)] + 0.05 * rng.normal(size=(30, DIM)))
    grown = np.concatenate([pool, planted, elsewhere])
    labeled = np.zeros(len(grown), bool)
    labeled[: len(pool)] = members | (rng.random(len(pool)) < 0.3)
    probe = LinearProbe(n_folds=0).fit(pool[:300], np.repeat([0, 1, 2], 100))
    uncertainty = uncertainty_of(probe.predict_proba(grown))

    mined = remine(similarity_to_examples(grown, examples), threshold, uncertainty, labeled)
    planted_positions = np.arange(len(pool), len(pool) + 6)
    assert sorted(mined.tolist()) == planted_positions.tolist()  # nothing far, nothing labeled
    assert np.all(np.diff(uncertainty[mined]) <= 0)  # most uncertain first


def test_remine_ranks_unlabeled_members_by_uncertainty_then_similarity():
    similarity = np.array([0.9, 0.8, 0.95, 0.5, 0.85, 0.99])
    uncertainty = np.array([0.2, 0.9, 0.2, 1.0, 0.1, 0.5])
    labeled = np.array([False, False, False, False, False, True])
    assert remine(similarity, 0.8, uncertainty, labeled).tolist() == [1, 2, 0, 4]
    assert remine(similarity, 0.8, None, labeled).tolist() == [2, 0, 4, 1]
    assert threshold_for_k(similarity, 2) == 0.95 and threshold_for_k(similarity, 99) == 0.5
    with pytest.raises(ValueError):
        similarity_to_examples(np.ones((2, 3)), np.zeros((0, 3)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_heldout_member_predictions_never_see_the_member_they_predict(seed):
    rng = np.random.default_rng(seed)
    a, b = unit(rng.normal(size=(2, DIM)))
    y = np.repeat([0, 1], 40)
    X = unit(np.where(y[:, None] == 0, a, b) + 0.12 * rng.normal(size=(80, DIM)))
    # Members: 6 items of class 0's cluster labeled 1. A weakly regularised model that saw
    # them fits them; models that did not see them mostly predict class 0.
    members = rng.choice(40, 6, replace=False)
    y_noisy = y.copy()
    y_noisy[members] = 1
    probe = LinearProbe(n_folds=0, C=100.0).fit(X, y_noisy)
    seen = accuracy(y_noisy[members], probe.predict(X[members]))
    held = accuracy(y_noisy[members], heldout_member_predictions(probe, X, y_noisy, members, n_folds=6))
    assert seen == 1.0 and held <= 0.5
    assert np.isnan(accuracy([], []))


@pytest.mark.parametrize("seed", [0, 1])
def test_multi_label_members_are_predicted_held_out_and_count_only_when_the_whole_set_is_right(seed):
    rng = np.random.default_rng(seed)
    a, b = unit(rng.normal(size=(2, DIM)))
    Y = np.repeat([[1, 0], [0, 1]], 40, axis=0).astype(np.int8)
    X = unit(np.where(Y[:, :1] == 1, a, b) + 0.12 * rng.normal(size=(80, DIM)))
    # Members: 6 items of the first cluster given both classes; only a model that saw them says so.
    members = rng.choice(40, 6, replace=False)
    Y_noisy = Y.copy()
    Y_noisy[members, 1] = 1
    probe = LinearProbe(n_folds=0, C=100.0, multi_label=True).fit(X, Y_noisy, classes=[3, 7])
    held = heldout_member_predictions(probe, X, Y_noisy, members, n_folds=6)
    assert held.shape == (6, 2) and accuracy(Y_noisy[members], probe.predict(X[members])) == 1.0
    assert accuracy(Y_noisy[members], held) <= 0.5
    assert accuracy(Y[members], held) >= 0.5  # held-out fits mostly give the cluster's one class
    assert accuracy([[1, 0], [1, 1]], [[1, 0], [1, 0]]) == 0.5  # one class short is wrong


# ----- through the service layer on the small sample project ----------------------------


def label_truly(engine, n, annotator="ann"):
    session = LabelingSession(engine, annotator)
    for _ in range(n):
        ask = session.current()
        session.label(ask.item_id, [class_id(engine, true_class(ask.path))])
    session.close()


def retrain(engine):
    before = engine.serving.model_version_id
    engine.retrain_now()
    assert engine.loop.wait_idle(120)
    assert engine.serving.model_version_id != before
    return engine.serving.model_version_id


@pytest.mark.slow
def test_slice_is_measured_with_every_model_version_after_retrain(engine):
    label_truly(engine, 12)
    first = retrain(engine)
    airplanes = [i for i, p in zip(engine.pool.item_ids.tolist(), engine.pool.paths) if p.startswith("airplane/")]
    slice_id = create_slice(
        engine, name="planes", example_item_ids=airplanes[:2], created_by="rev", config=SliceConfig(k=8)
    )
    [found] = project_slices(engine.db, "default")
    assert found.id == slice_id and found.example_item_ids == sorted(airplanes[:2]) and found.k == 8
    assert [p.model_version_id for p in found.trend] == [first]
    point = found.trend[0]
    assert point.n_members == 8 and point.n_labeled + point.n_mined == 8
    assert len(found.mined_item_ids) == point.n_mined
    assert all(engine.current_label(i) is None for i in found.mined_item_ids)

    label_truly(engine, 6)
    second = retrain(engine)
    [found] = project_slices(engine.db, "default")
    assert [p.model_version_id for p in found.trend] == [first, second]  # the hook measured it
    assert found.trend[1].n_labeled >= point.n_labeled
    for p in found.trend:
        assert p.accuracy is None if p.n_labeled == 0 else 0.0 <= p.accuracy <= 1.0
    live = measure(engine, examples=found.example_item_ids, min_similarity=found.min_similarity)
    assert live.mined_item_ids == found.mined_item_ids and live.n_members == 8

    with pytest.raises(UserError, match="already has a slice"):
        create_slice(engine, name="planes", example_item_ids=airplanes[:1])
    with pytest.raises(UserError, match="no .* embedding"):
        create_slice(engine, name="ghost", example_item_ids=[10**9])
    with pytest.raises(UserError, match="empty"):
        create_slice(engine, name=" ", example_item_ids=airplanes[:1])


@pytest.mark.slow
def test_a_failing_after_model_hook_never_stops_the_new_model_serving(engine, monkeypatch):
    def broken(_engine):
        raise RuntimeError("boom")

    monkeypatch.setattr(after_model, "HOOKS", (broken,))
    label_truly(engine, 8)
    retrain(engine)
    assert engine.last_error is None


# ----- storage, on SQLite and PostgreSQL ------------------------------------------------


def test_slice_rows_round_trip_and_one_metric_per_model_version(backend_db):
    from sqlalchemy.exc import IntegrityError

    from storage import queries
    from storage.labels import label_queries
    from storage.models import ItemStatus
    from storage.slices import slice_queries

    with backend_db.writing() as session:
        project = queries.add_project(session, name="p", root_path="/data")
        items = [
            item_id
            for item_id, _ in queries.insert_items(
                session,
                [
                    dict(
                        project_id=project.id,
                        path=f"{i}.jpg",
                        sha256=f"{i:064d}",
                        size_bytes=1,
                        mtime_ns=1,
                        status=ItemStatus.OK,
                    )
                    for i in range(3)
                ],
            )
        ]
        version = label_queries.add_model_version(
            session, project_id=project.id, n_labels=5, metrics={}, artifact_path="m.npz"
        )
        found = slice_queries.add_slice(
            session,
            project_id=project.id,
            name="dark",
            backbone_key="bundled-x",
            k=10,
            min_similarity=0.75,
            created_by="rev",
            example_item_ids=[items[1], items[0]],
        )
        slice_queries.add_metric(
            session,
            slice_id=found.id,
            model_version_id=version,
            values=dict(n_members=10, n_labeled=4, n_mined=6, accuracy=0.5, mined_item_ids=[items[2]]),
        )
        project_id, slice_id = project.id, found.id
    with backend_db.reading() as session:
        [stored] = slice_queries.project_slices(session, project_id)
        assert (stored.name, stored.k, stored.min_similarity) == ("dark", 10, 0.75)
        assert slice_queries.slice_examples(session, [slice_id]) == {slice_id: sorted(items[:2])}
        [metric] = slice_queries.slice_metrics(session, [slice_id])[slice_id]
        assert (metric.accuracy, metric.mined_item_ids) == (0.5, [items[2]])
        assert slice_queries.has_metric(session, slice_id, version)
    with pytest.raises(IntegrityError), backend_db.writing() as session:
        slice_queries.add_metric(
            session,
            slice_id=slice_id,
            model_version_id=version,
            values=dict(n_members=1, n_labeled=0, n_mined=1, accuracy=None, mined_item_ids=[]),
        )


@pytest.mark.slow
def test_multi_label_slices_are_measured_with_set_accuracy(engine):
    engine = multi_label_engine(engine)
    label_truly(engine, 12)
    retrain(engine)
    airplanes = [i for i, p in zip(engine.pool.item_ids.tolist(), engine.pool.paths) if p.startswith("airplane/")]
    labeled = [i for i in airplanes if engine.current_label(i) is not None]
    assert labeled, "the strategy asked about no airplane"
    measured = measure(engine, examples=labeled[:1], min_similarity=-1.0)  # every image a member
    assert measured.n_labeled == 12 and measured.accuracy is not None and 0.0 <= measured.accuracy <= 1.0
