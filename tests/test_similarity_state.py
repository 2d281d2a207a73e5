import numpy as np
import pytest
from scipy.special import expit

from core.model.pool_predictions import PoolPredictions
from core.model.probe import LinearProbe
from core.selection.scorers import UNCERTAINTY
from core.selection.scorers import margin as margin_of
from core.similarity.pool_kernels import Int8Kernel
from core.similarity.similarity_state import SimilarityState
from tests.engine_data import clusters


def brute_force(X, rows, labels):
    sims = X @ X[rows].T
    nearest = sims.max(axis=1)
    classes = np.unique(labels)
    per_class = np.stack([sims[:, labels == c].max(axis=1) for c in classes])
    return nearest, rows[sims.argmax(axis=1)], classes, per_class


@pytest.fixture
def pool():
    X, y = clusters([300, 300, 300, 100], dim=24, spread=1.0, seed=0)
    return X, y


@pytest.fixture(params=["float32", "int8"])
def kernel(request, monkeypatch):
    monkeypatch.setattr(Int8Kernel, "block_rows", 128)  # 1,000 rows: 8 packed blocks, shared by the threads
    return request.param


def pair_similarity(state, items, rows):
    """The state's kernel's similarity of each (labeled row, item) pair."""
    items, rows = np.asarray(items), np.asarray(rows)
    out = np.empty(len(items), np.float32)
    for row in np.unique(rows):
        at = np.flatnonzero(rows == row)
        out[at] = state._kernel.best_match(state.embeddings[[row]].astype(np.float32), items[at])[0]
    return out


def test_incremental_updates_equal_a_full_recompute(pool, kernel):
    X, y = pool
    rng = np.random.default_rng(0)
    rows = rng.choice(len(X), 120, replace=False)
    rows = rows[np.argsort(y[rows] == 3, kind="stable")]  # class 3 first appears in the last batches
    # Small blocks exercise the label blocking; 3 threads split the pool unevenly.
    incremental = SimilarityState(X, kernel=kernel, label_block=7, n_threads=3)
    for batch in np.array_split(np.arange(120), 9):
        incremental.add_labels(rows[batch], y[rows][batch])
    full = SimilarityState(X, kernel=kernel, n_threads=1).refresh(rows, y[rows])
    # int8 sums are exact and a pair's value never depends on the rest of the call: equal bit for bit.
    atol = 0 if kernel == "int8" else 1e-6
    np.testing.assert_allclose(incremental.nearest_similarity_, full.nearest_similarity_, atol=atol, rtol=0)
    np.testing.assert_array_equal(incremental.classes_, full.classes_)
    np.testing.assert_allclose(incremental.class_similarity_, full.class_similarity_, atol=atol, rtol=0)
    np.testing.assert_array_equal(incremental.labeled_, full.labeled_)
    # The index may differ only between (numerically) tied labeled items.
    at_index = pair_similarity(incremental, np.arange(len(X)), incremental.nearest_index_)
    np.testing.assert_allclose(at_index, full.nearest_similarity_, atol=max(atol, 1e-6), rtol=0)


def test_state_matches_brute_force(pool, kernel):
    X, y = pool
    rows = np.arange(0, len(X), 37)
    state = SimilarityState(X, kernel=kernel).refresh(rows, y[rows])
    nearest, index, classes, per_class = brute_force(X, rows, y[rows])
    atol = 0.02 if kernel == "int8" else 1e-6  # 8-bit codes of the pool, 7-bit queries
    np.testing.assert_allclose(state.nearest_similarity_, nearest, atol=atol)
    if kernel == "float32":
        np.testing.assert_array_equal(state.nearest_index_, index)
    else:  # another labeled item may win a near-tie, but only by less than the quantization error
        np.testing.assert_allclose(np.einsum("ij,ij->i", X, X[state.nearest_index_]), nearest, atol=atol)
    np.testing.assert_array_equal(state.classes_, classes)
    np.testing.assert_allclose(state.class_similarity_, per_class, atol=atol)
    assert state.labeled_.sum() == len(rows)
    np.testing.assert_allclose(state.nearest_similarity_[rows], 1.0, atol=atol)


def test_refresh_forgets_relabels_and_removals(pool):
    X, y = pool
    state = SimilarityState(X).add_labels([0, 400], [0, 1])
    state.add_labels([0], [1])  # relabel: incremental keeps the stale class-0 entry
    assert np.isfinite(state.class_similarity_[0]).all()
    state.refresh([0, 400], [1, 1])
    assert list(state.classes_) == [1]
    state.refresh([], [])
    assert np.isneginf(state.nearest_similarity_).all() and (state.nearest_index_ == -1).all()


def test_similarity_to_class_gathers_the_predicted_class_column(pool):
    X, y = pool
    rows = np.array([0, 1, 300, 301])
    state = SimilarityState(X).refresh(rows, np.array(["a", "a", "b", "b"]))
    predicted = np.where(y == 0, "a", "b")
    got = state.similarity_to_class(predicted)
    expected = np.where(y == 0, (X @ X[[0, 1]].T).max(axis=1), (X @ X[[300, 301]].T).max(axis=1))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert np.isneginf(state.similarity_to_class(np.array(["zebra"]), rows=np.array([5])))[0]
    np.testing.assert_allclose(
        state.similarity_to_class(predicted[[5, 700]], rows=np.array([5, 700])), expected[[5, 700]], atol=1e-6
    )


def test_float16_embeddings_work_by_reference(pool, kernel):
    X, y = pool
    half = X.astype(np.float16)
    state = SimilarityState(half, kernel=kernel).refresh([3, 500], [0, 1])
    assert state.embeddings is half
    reference = SimilarityState(half.astype(np.float32), kernel=kernel).refresh([3, 500], [0, 1])
    np.testing.assert_allclose(state.nearest_similarity_, reference.nearest_similarity_, atol=1e-6)


def test_typicality_is_cached_and_higher_inside_clusters(pool):
    X, y = pool
    state = SimilarityState(X)
    t = state.typicality(k=10, reference_size=500)
    assert state.typicality(k=10, reference_size=500) is t
    assert t.shape == (len(X),)
    assert state.typicality(k=5, reference_size=500) is not t


def test_rejects_bad_rows(pool):
    X, _ = pool
    state = SimilarityState(X)
    with pytest.raises(ValueError, match="pool rows"):
        state.add_labels([len(X)], [0])
    with pytest.raises(ValueError, match="labels"):
        state.add_labels([1, 2], [0])


def test_pool_predictions_are_computed_once_per_probe_and_follow_a_refit(pool):
    X, y = pool
    rows = np.arange(0, len(X), 10)
    probe = LinearProbe(n_folds=0).fit(X[rows], y[rows])
    state = SimilarityState(X)
    predictions = state.predictions(probe)
    margin = predictions.uncertainty("margin")
    np.testing.assert_allclose(margin, margin_of(probe.predict_proba(X)), rtol=1e-5)  # float32 against float64
    np.testing.assert_array_equal(probe.classes_[predictions.predicted_column()], probe.predict(X))
    assert state.predictions(probe) is predictions and predictions.uncertainty("margin") is margin
    probe.fit(X[rows[:40]], y[rows[:40]])  # refit in place: the cached predictions are stale
    fresh = state.predictions(probe)
    assert fresh is not predictions
    np.testing.assert_allclose(fresh.uncertainty("margin"), margin_of(probe.predict_proba(X)), rtol=1e-5)


def assert_same_state(state, reference):
    atol = 0 if state.kernel == "int8" else 1e-6  # int8: equal bit for bit
    np.testing.assert_array_equal(state.classes_, reference.classes_)
    np.testing.assert_array_equal(state.labeled_, reference.labeled_)
    np.testing.assert_allclose(state.nearest_similarity_, reference.nearest_similarity_, atol=atol, rtol=0)
    np.testing.assert_allclose(state.class_similarity_, reference.class_similarity_, atol=atol, rtol=0)
    labeled = state.nearest_index_ >= 0
    np.testing.assert_array_equal(labeled, reference.nearest_index_ >= 0)
    at_index = pair_similarity(state, np.flatnonzero(labeled), state.nearest_index_[labeled])
    np.testing.assert_allclose(at_index, reference.nearest_similarity_[labeled], atol=max(atol, 1e-6), rtol=0)
    assert state.labeled_[state.nearest_index_[labeled]].all()


def test_removing_labels_equals_a_full_recompute(pool, kernel):
    X, y = pool
    rng = np.random.default_rng(1)
    rows = rng.choice(len(X), 60, replace=False)
    labels = y[rows].copy()
    state = SimilarityState(X, kernel=kernel).add_labels(rows, labels)
    state.add_labels(rows[:3], (labels[:3] + 1) % 4)  # three items with a second class (multi-label)
    pairs = {(int(r), int(c)) for r, c in zip(rows, labels)} | {
        (int(r), int((c + 1) % 4)) for r, c in zip(rows[:3], labels[:3])
    }
    # Undo some labels, take one class's second label off an item, relabel another, empty class 3.
    undone = rows[10:20]
    state.remove_labels(undone, labels[10:20])
    state.remove_labels(rows[:1], (labels[:1] + 1) % 4)
    state.remove_labels(rows[25:26], labels[25:26])
    state.add_labels(rows[25:26], (labels[25:26] + 2) % 4)
    class_3 = [(r, c) for r, c in pairs if c == 3 and r not in undone and r != rows[25]]
    state.remove_labels([r for r, _ in class_3], [c for _, c in class_3])
    pairs -= {(int(r), int(c)) for r, c in zip(undone, labels[10:20])}
    pairs -= {(int(rows[0]), int((labels[0] + 1) % 4)), (int(rows[25]), int(labels[25]))}
    pairs |= {(int(rows[25]), int((labels[25] + 2) % 4))}
    pairs -= set(class_3)
    remaining = sorted(pairs)
    reference = SimilarityState(X, kernel=kernel).refresh([r for r, _ in remaining], [c for _, c in remaining])
    assert len(class_3) > 0 and len(remaining) == 60 + 3 - 10 - 1 - len(class_3)
    assert_same_state(state, reference)
    with pytest.raises(ValueError, match="no label"):
        state.remove_labels(undone[:1], labels[10:11])


def test_removing_every_label_leaves_an_empty_state(pool, kernel):
    X, y = pool
    state = SimilarityState(X, kernel=kernel).add_labels([3, 500], [0, 1]).remove_labels([3, 500], [0, 1])
    assert_same_state(state, SimilarityState(X, kernel=kernel))
    assert len(state.classes_) == 0 and np.isneginf(state.nearest_similarity_).all()


@pytest.mark.parametrize("method", ["margin", "entropy", "least_confidence"])
def test_float32_pool_predictions_match_the_float64_probabilities(pool, method):
    """Temperature, a known class without labels (probability 0) and blocks split across
    threads: the float32 scores equal the float64 reference up to float32 rounding."""
    X, y = pool
    rows = np.arange(0, len(X), 7)
    rows = rows[y[rows] != 3]
    probe = LinearProbe(n_folds=0).fit(X[rows], y[rows], classes=[0, 1, 2, 3])
    probe.temperature_ = 0.7
    assert np.isneginf(probe.intercept_[3])
    predictions = PoolPredictions(X, probe, n_threads=3)
    proba = probe.predict_proba(X)
    np.testing.assert_allclose(predictions.uncertainty(method), UNCERTAINTY[method](proba), rtol=1e-5, atol=1e-12)
    np.testing.assert_array_equal(predictions.predicted_column(), proba.argmax(axis=1))


def test_confident_items_keep_distinct_nonzero_margins():
    """1 - p_top is not computed as a difference: margins far below float32's 1e-7 survive."""
    X = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    probe = LinearProbe(n_folds=0).fit(X, [0, 1])
    probe.coef_, probe.intercept_ = np.array([[20, -20], [-20, 20]], np.float32), np.zeros(2, np.float32)
    pool = np.array([[1.0, 0.0], [0.9, 0.1], [0.5, 0.5]], np.float32)
    margin = PoolPredictions(pool, probe).uncertainty("margin")
    gap = np.abs(np.diff(probe.decision_function(pool).astype(np.float64), axis=1)[:, 0])
    np.testing.assert_allclose(margin, 2 * expit(-gap), rtol=1e-5)  # 1 - (p1 - p2) with two classes
    assert margin_of(probe.predict_proba(pool))[0] == 0  # where float64 probabilities round to certainty
    assert 0 < margin[0] < margin[1] < margin[2]
