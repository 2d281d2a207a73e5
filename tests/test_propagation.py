"""Label spreading over the pool graph and the semi-supervised probe built on it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.model.probe import LinearProbe
from core.model.propagation import LabelSpreading, PropagationConfig, SemiSupervisedProbe


def plain_probe():
    return LinearProbe(n_folds=0, calibrate=False, warm_start=False)


def two_arcs(n_per_arc=300, seed=0):
    """Two long parallel arcs on the sphere, a small gap between them, each arc one class.

    The arcs run along (e1, e2) over 1.5 radians and sit 0.3 apart along e3: neighbours
    are always on the same arc, but the labels at opposite ends of the arcs differ mostly
    along the arcs, which is where a probe on those two labels alone puts its boundary.
    """
    rng = np.random.default_rng(seed)
    theta = np.tile(np.linspace(0, 1.5, n_per_arc), 2)
    y = np.repeat([0, 1], n_per_arc)
    X = np.zeros((2 * n_per_arc, 8))
    X[:, 0], X[:, 1], X[:, 2] = np.cos(theta), np.sin(theta), 0.3 * y
    X[:, 3:] = rng.normal(scale=0.002, size=(len(X), 5))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    # One label per class, at opposite ends: arc 0 at its start, arc 1 at its end.
    return X.astype(np.float32), y, np.array([0, 2 * n_per_arc - 1])


def test_one_label_per_cluster_spreads_to_the_whole_cluster():
    X, y, rows = two_arcs()
    rest = np.setdiff1d(np.arange(len(X)), rows)

    probe = plain_probe().fit(X[rows], y[rows])
    assert np.mean(probe.predict(X[rest]) == y[rest]) < 0.8  # the labels alone mislead

    classes, proba = LabelSpreading().fit(X).spread(rows, y[rows])
    assert np.mean(classes[proba[rest].argmax(axis=1)] == y[rest]) == 1.0

    semi = SemiSupervisedProbe().fit(X, rows, y[rows])
    assert semi.cv_scores_ == {}  # one label per class: nothing to cross-validate
    assert semi.pseudo_weight_ == PropagationConfig().unvalidated_weight
    assert semi.n_pseudo_ > 0
    assert np.mean(semi.predict(X[rest]) == y[rest]) >= 0.99


def noisy_linear_classes(n=4000, dim=256, seed=0):
    """Two Gaussian classes apart along one direction, buried in isotropic noise in 255 others.

    A linear probe finds the one direction from enough labels; neighbours in the full space
    are mostly noise, so spread labels are often wrong and pseudo-labels at a high weight hurt.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, dim))
    X[:, 0] += np.where(y == 1, 1.2, -1.2)
    X[:, 1] += 16.0  # a common component, as real embeddings have, so normalising keeps the geometry
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), y


def test_with_many_labels_never_worse_than_the_probe_on_labels_alone():
    X, y = noisy_linear_classes()
    pool, test = np.arange(3000), np.arange(3000, 4000)
    rows = np.random.default_rng(1).choice(pool, 1500, replace=False)
    spreading = LabelSpreading().fit(X[pool])

    probe_accuracy = np.mean(plain_probe().fit(X[rows], y[rows]).predict(X[test]) == y[test])
    semi = SemiSupervisedProbe(spreading=spreading).fit(X[pool], rows, y[rows])
    semi_accuracy = np.mean(semi.predict(X[test]) == y[test])
    assert semi_accuracy >= probe_accuracy - 0.005

    # The case is one where pseudo-labels at a fixed, high weight do hurt, so the test can fail.
    forced = dataclasses.replace(PropagationConfig(), cv_folds=1, unvalidated_weight=3.0)
    forced_semi = SemiSupervisedProbe(config=forced, spreading=spreading).fit(X[pool], rows, y[rows])
    assert forced_semi.pseudo_weight_ == 3.0
    assert np.mean(forced_semi.predict(X[test]) == y[test]) < probe_accuracy - 0.02
    assert semi.pseudo_weight_ < 3.0


def test_spread_shapes_and_normalisation():
    X, y, rows = two_arcs(n_per_arc=50)
    spreading = LabelSpreading(config=PropagationConfig(k=5)).fit(X)
    assert spreading.graph_.shape == (100, 100)
    assert spreading.graph_.nnz <= 2 * 5 * 100
    assert abs(spreading.graph_ - spreading.graph_.T).max() < 1e-6  # symmetric

    classes, proba = spreading.spread(rows, y[rows], classes=[0, 1, 7])
    assert classes.tolist() == [0, 1, 7]
    assert proba.shape == (100, 3) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert np.all(proba[:, 2] == 0)  # a class without labels gets no score

    new = spreading.extend(X[:7] + 0.001, proba)
    assert new.shape == (7, 3)
    np.testing.assert_allclose(new.sum(axis=1), 1, rtol=1e-5)

    semi = SemiSupervisedProbe(spreading=spreading).fit(X, rows, y[rows], classes=[0, 1, 7])
    assert semi.classes_.tolist() == [0, 1, 7]
    assert semi.predict_proba(X).shape == (100, 3)
    assert semi.predict(X).shape == (100,)
    assert len(semi.pseudo_rows_) == len(semi.pseudo_labels_) == semi.n_pseudo_
    assert not np.isin(semi.pseudo_rows_, rows).any()


def test_validation_errors():
    X, y, rows = two_arcs(n_per_arc=20)
    with pytest.raises(ValueError, match="not fitted"):
        LabelSpreading().spread(rows, y[rows])
    with pytest.raises(ValueError, match="2-D"):
        LabelSpreading().fit(X[0])
    with pytest.raises(ValueError, match="at least 2 rows"):
        LabelSpreading().fit(X[:1])
    spreading = LabelSpreading().fit(X)
    with pytest.raises(ValueError, match="one length"):
        spreading.spread(rows, y[:3])
    with pytest.raises(ValueError, match="integer indices"):
        spreading.spread(np.array([0, 40]), np.array([0, 1]))
    with pytest.raises(ValueError, match="integer indices"):
        spreading.spread(np.array([0.0, 1.0]), np.array([0, 1]))
    with pytest.raises(ValueError, match="must not repeat"):
        spreading.spread(np.array([3, 3]), np.array([0, 1]))
    with pytest.raises(ValueError, match="at least one label"):
        spreading.spread(np.array([], np.int64), np.array([]))
    with pytest.raises(ValueError, match="rows"):
        spreading.extend(X, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="fit on 40 rows"):
        SemiSupervisedProbe(spreading=spreading).fit(X[:30], rows[:1], y[rows[:1]])
    with pytest.raises(ValueError, match="sample_weight"):
        plain_probe().fit(X[:4], [0, 1, 0, 1], sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        plain_probe().fit(X[:4], [0, 1, 0, 1], sample_weight=-np.ones(4))


def test_sample_weight_zero_ignores_a_row():
    X, y = noisy_linear_classes(n=200)
    weight = np.ones(200)
    weight[:50] = 0
    flipped = y.copy()
    flipped[:50] = 1 - flipped[:50]
    unbalanced = dict(n_folds=0, calibrate=False, warm_start=False, class_weight=None)
    fit = LinearProbe(**unbalanced).fit(X, y, sample_weight=weight)
    refit = LinearProbe(**unbalanced).fit(X, flipped, sample_weight=weight)
    np.testing.assert_allclose(fit.predict_proba(X), refit.predict_proba(X), atol=1e-4)
    unweighted = LinearProbe(**unbalanced).fit(X, flipped)
    assert np.abs(fit.predict_proba(X) - unweighted.predict_proba(X)).max() > 0.01
