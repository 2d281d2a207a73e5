import numpy as np
import pytest

from core.model.probe import LinearProbe
from tests.engine_data import clusters


def nll(proba, y, classes):
    return -np.mean(np.log(proba[np.arange(len(y)), np.searchsorted(classes, y)].clip(1e-12)))


def test_learns_separable_clusters_and_columns_follow_classes():
    X, y = clusters([60, 60, 60])
    names = np.array(["cat", "dog", "emu"])[y]
    probe = LinearProbe().fit(X, names)
    assert list(probe.classes_) == ["cat", "dog", "emu"]
    proba = probe.predict_proba(X)
    assert proba.shape == (180, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-6)
    assert np.mean(probe.predict(X) == names) > 0.98


def test_zero_labels_gives_uniform_over_known_classes():
    X, _ = clusters([10, 10])
    probe = LinearProbe().fit(X[:0], np.array([], dtype=int), classes=[3, 7])
    np.testing.assert_allclose(probe.predict_proba(X), 0.5)
    assert probe.oof_proba_.shape == (0, 2)
    assert LinearProbe().fit(X[:0], []).predict_proba(X).shape == (20, 0)


def test_one_class_predicts_it_with_certainty():
    X, _ = clusters([10, 10])
    probe = LinearProbe().fit(X[:10], np.full(10, "banana"))
    np.testing.assert_allclose(probe.predict_proba(X), 1.0)
    np.testing.assert_allclose(probe.oof_proba_, 1.0)
    assert set(probe.predict(X)) == {"banana"}


def test_known_class_without_labels_gets_probability_zero():
    X, y = clusters([20, 20])
    probe = LinearProbe().fit(X, y, classes=[0, 1, 2])
    assert probe.predict_proba(X).shape == (40, 3)
    assert probe.predict_proba(X)[:, 2].max() == 0.0


def test_class_appearing_mid_session_grows_classes_and_warm_starts():
    X, y = clusters([40, 40, 40], seed=1)
    probe = LinearProbe()
    first = y < 2
    probe.fit(X[first], y[first])
    old_coef = probe.coef_.copy()
    assert list(probe.classes_) == [0, 1]
    probe.fit(X, y)
    assert list(probe.classes_) == [0, 1, 2]
    assert probe.predict_proba(X).shape == (120, 3)
    assert np.mean(probe.predict(X[y == 2]) == 2) > 0.95
    # The old classes' weights started from the previous fit, so they moved little.
    moved = np.linalg.norm(probe.coef_[:, :2] - old_coef) / np.linalg.norm(old_coef)
    assert moved < 1.0


def test_warm_start_keeps_classes_and_needs_fewer_iterations():
    X, y = clusters([150, 150, 150], spread=1.2, seed=2)
    probe = LinearProbe().fit(X[:-30], y[:-30])
    cold_iterations = probe.n_iter_
    probe.fit(X, y)
    assert probe.n_iter_ < cold_iterations
    cold = LinearProbe(warm_start=False).fit(X, y)
    np.testing.assert_allclose(probe.predict_proba(X), cold.predict_proba(X), atol=0.02)


def test_balanced_class_weights_raise_minority_recall():
    X, y = clusters([800, 420], spread=2.0, seed=3)
    train = np.r_[0:400, 800:820]  # 400 of class 0, 20 of class 1
    minority = np.arange(820, 1220)
    recall = {}
    for weight in ("balanced", None):
        probe = LinearProbe(class_weight=weight, n_folds=0).fit(X[train], y[train])
        recall[weight] = np.mean(probe.predict(X[minority]) == 1)
    assert recall["balanced"] > recall[None] + 0.05


@pytest.mark.parametrize("C", [0.01, 100.0])  # under- and over-confident without calibration
def test_temperature_improves_held_out_likelihood(C):
    X_all, y_all = clusters([600, 600, 600], spread=3.0, seed=4)
    X, y, held_X, held_y = X_all[::15], y_all[::15], X_all[1::2], y_all[1::2]
    raw = LinearProbe(C=C, calibrate=False).fit(X, y)
    calibrated = LinearProbe(C=C, calibrate=True).fit(X, y)
    assert (calibrated.temperature_ < 1) == (C < 1)
    assert nll(calibrated.predict_proba(held_X), held_y, raw.classes_) < 0.8 * nll(
        raw.predict_proba(held_X), held_y, raw.classes_
    )
    np.testing.assert_array_equal(calibrated.predict(held_X), raw.predict(held_X))


def test_out_of_fold_probabilities_expose_a_planted_label_error():
    X, y = clusters([50, 50], seed=5)
    noisy = y.copy()
    noisy[0] = 1  # a cluster-0 item labeled 1
    probe = LinearProbe().fit(X, noisy)
    assert probe.oof_proba_[0, 1] < 0.5
    assert np.argmin(probe.oof_proba_[np.arange(100), noisy]) == 0


def test_out_of_fold_warm_start_does_not_leak_held_out_labels():
    X, y = clusters([200, 200, 200], spread=1.5, seed=6)
    warm = LinearProbe().fit(X, y)
    tight = LinearProbe(tol=1e-9, max_iter=5000).fit(X, y)
    np.testing.assert_allclose(warm.oof_proba_, tight.oof_proba_, atol=0.02)


def test_arrays_round_trip_without_pickle():
    X, y = clusters([30, 30, 30], seed=7)
    probe = LinearProbe().fit(X, np.array(["a", "b", "c"])[y])
    arrays = probe.to_arrays()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
    restored = LinearProbe.from_arrays({k: v.copy() for k, v in arrays.items()})
    np.testing.assert_array_equal(restored.predict_proba(X), probe.predict_proba(X))
    np.testing.assert_array_equal(restored.predict(X), probe.predict(X))


def test_multi_label_one_vs_rest():
    X, cluster = clusters([50, 50, 50], seed=8)
    # Label "red" on clusters 0 and 1, "round" on clusters 1 and 2.
    Y = np.stack([cluster <= 1, cluster >= 1], axis=1).astype(int)
    probe = LinearProbe(multi_label=True).fit(X, Y, classes=["red", "round"])
    assert probe.predict_proba(X).shape == (150, 2)
    assert np.mean(probe.predict(X) == Y) > 0.95
    restored = LinearProbe.from_arrays(probe.to_arrays())
    assert restored.multi_label
    np.testing.assert_array_equal(restored.predict(X), probe.predict(X))


def test_rejects_mismatched_inputs():
    X, y = clusters([5, 5])
    with pytest.raises(ValueError, match="rows"):
        LinearProbe().fit(X, y[:-1])
    with pytest.raises(ValueError, match="columns"):
        LinearProbe(multi_label=True).fit(X, np.ones((10, 2)), classes=["a"])
