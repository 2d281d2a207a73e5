import numpy as np
import pytest

from core.quality.audit import StopRule, accuracy_estimate, draw_audits, learning_curve, stop_hint, wilson_interval


def test_draw_audits_takes_the_share_uniformly():
    rng = np.random.default_rng(0)
    pool = np.arange(1000, 2000)
    assert len(draw_audits(pool, 50, 0.0, rng)) == 0
    assert len(np.unique(draw_audits(pool, 50, 1.0, rng))) == 50
    drawn = np.concatenate([draw_audits(pool, 20, 0.05, rng) for _ in range(2000)])
    assert len(drawn) / (2000 * 20) == pytest.approx(0.05, abs=0.005)
    assert np.isin(drawn, pool).all()
    # Uniform over the pool: each tenth of it gets about a tenth of the audits.
    counts = np.bincount((drawn - 1000) // 100, minlength=10)
    assert counts.min() > 0.7 * counts.mean()


def test_audits_estimate_pool_accuracy_without_the_bias_of_chosen_asks():
    rng = np.random.default_rng(1)
    # A pool where the model is right on 80%; the strategy asks about hard items,
    # where it is right on 40% only.
    right = rng.random(20_000) < 0.8
    hard = np.flatnonzero(~right)[:600].tolist() + np.flatnonzero(right)[:400].tolist()
    covered = 0
    for _ in range(200):
        audits = draw_audits(np.arange(20_000), 1000, 0.05, rng)
        low, high = wilson_interval(right[audits].sum(), len(audits), 0.9)
        covered += low <= 0.8 <= high
    assert 0.83 <= covered / 200 <= 0.97  # the 90% interval covers the truth about 90% of the time
    assert right[hard].mean() == pytest.approx(0.4)


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(10, 10, 0.9)
    assert high == pytest.approx(1.0) and 0.7 < low < 1.0
    low, high = wilson_interval(0, 10, 0.9)
    assert low == pytest.approx(0.0, abs=1e-12) and 0 < high < 0.3
    low, high = wilson_interval(np.array([5, 50]), np.array([10, 100]))
    assert (high - low)[1] < (high - low)[0]


def test_learning_curve_per_version():
    version = [1, 1, 2, 2, 2, 2, 3]
    n_labels = [10, 10, 20, 20, 20, 20, 30]
    correct = [True, False, True, True, True, False, True]
    curve = learning_curve(version, n_labels, correct)
    assert curve.version.tolist() == [1, 2, 3]
    assert curve.n_labels.tolist() == [10, 20, 30]
    assert curve.n_audits.tolist() == [2, 4, 1]
    np.testing.assert_allclose(curve.accuracy, [0.5, 0.75, 1.0])
    assert (curve.low <= curve.accuracy).all() and (curve.accuracy <= curve.high).all()


def simulated_audits(accuracy_at, n_audits, seed):
    """Audits one every 20 labels from a model whose accuracy follows ``accuracy_at(labels)``."""
    rng = np.random.default_rng(seed)
    n_labels = np.arange(1, n_audits + 1) * 20
    return n_labels, rng.random(n_audits) < accuracy_at(n_labels)


def test_stop_hint_fires_on_a_flat_curve_only():
    flat = simulated_audits(lambda n: np.full(len(n), 0.9), 400, seed=2)
    rising = simulated_audits(lambda n: 0.3 + 0.6 * n / 8000, 400, seed=2)  # +0.0075 per 100 labels
    rule = StopRule(window=200, min_gain=0.002)
    assert stop_hint(*flat, rule=rule).stop
    hint = stop_hint(*rising, rule=rule)
    assert not hint.stop and hint.gain_per_100 > 0.002
    assert hint.low <= hint.accuracy <= hint.high


def test_stop_hint_waits_for_enough_audits():
    few = simulated_audits(lambda n: np.full(len(n), 0.9), 30, seed=3)
    hint = stop_hint(*few)
    assert not hint.stop and np.isnan(hint.gain_per_100) and "needs 80" in hint.reason
    same_labels = (np.full(100, 50), np.ones(100, bool))
    assert not stop_hint(*same_labels).stop


def test_stop_hint_waiting_for_audits_says_how_many_more_labels_that_takes():
    hint = stop_hint(np.full(30, 100), np.ones(30, bool), audit_share=0.05)
    assert hint.more_labels == 1000 and "about 1,000 more labels" in hint.reason  # 50 audits at 1 in 20


def test_accuracy_estimate_leans_on_out_of_fold_early_and_on_audits_later():
    early = accuracy_estimate([], 0.8, 60)  # no audit answer yet: the out-of-fold accuracy, worth 20
    assert early.accuracy == pytest.approx(17 / 22) and early.high - early.low < 0.3
    assert "out-of-fold accuracy 80% on 60 labeled images" in early.basis
    audits = np.r_[np.ones(95, bool), np.zeros(5, bool)]  # 95% of 100 audits: they outweigh it
    later = accuracy_estimate(audits, 0.6, 500)
    assert 0.88 < later.accuracy < 0.95 and later.low < later.accuracy < later.high
    assert "95 of 100 audit answers right" in later.basis
    nothing = accuracy_estimate([], None, 0)
    assert nothing.accuracy == 0.5 and nothing.high - nothing.low > 0.8 and nothing.basis == "no evidence yet"
