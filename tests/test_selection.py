import numpy as np
import pytest

from core.model.probe import LinearProbe
from core.selection.selection import ALL_STRATEGIES, PART_NAMES, SelectionConfig, select
from core.similarity.similarity_state import SimilarityState
from tests.engine_data import clusters, normalise

QUIET = SelectionConfig(audit_share=0.0, discovery_min_labels=0)  # strategy picks only


def at_cosine(anchor, cosine, count, rng):
    """Unit vectors at a given cosine to ``anchor``."""
    u = rng.standard_normal((count, len(anchor)))
    u -= (u @ anchor)[:, None] * anchor
    u = normalise(u)
    return normalise(cosine * anchor + np.sqrt(1 - cosine**2) * u)


@pytest.fixture
def bands():
    """4 labeled anchors; per anchor 40 near-copies (cos 0.99) and 40 mid items (cos 0.65);
    40 outliers unlike any anchor. Returns embeddings, kind per row, labeled rows, labels."""
    rng = np.random.default_rng(0)
    dim = 64
    anchors = normalise(rng.standard_normal((4, dim)))
    rows, kinds = [anchors], ["anchor"] * 4
    for a in anchors:
        rows += [at_cosine(a, 0.99, 40, rng), at_cosine(a, 0.65, 40, rng)]
        kinds += ["copy"] * 40 + ["mid"] * 40
    outliers = normalise(rng.standard_normal((40, dim)))
    rows.append(outliers)
    kinds += ["outlier"] * 40
    return np.vstack(rows), np.array(kinds), np.arange(4), np.arange(4)


@pytest.mark.parametrize("strategy", ["default", "band_only"])
def test_mid_band_items_are_chosen_over_near_copies_and_outliers(bands, strategy):
    X, kind, labeled, labels = bands
    picks = select(X, labeled, labels, 12, strategy=strategy, config=QUIET, rng=0)
    assert set(kind[picks.indices]) == {"mid"}
    # The band sits between the outliers and the copies.
    centre, _ = picks.band
    assert 0.3 < centre < 0.95


def test_mid_band_wins_with_a_fitted_probe_too(bands):
    X, kind, labeled, labels = bands
    probe = LinearProbe().fit(X[labeled], labels)
    picks = select(X, labeled, labels, 12, probe=probe, config=QUIET, rng=0)
    assert set(kind[picks.indices]) == {"mid"}


@pytest.mark.slow
def test_cold_start_covers_every_cluster():
    X, y = clusters([300, 200, 100, 50, 30, 20], seed=1)
    picks = select(X, [], [], 6, rng=0, config=SelectionConfig(audit_share=0.0))
    assert sorted(y[picks.indices]) == [0, 1, 2, 3, 4, 5]
    assert set(picks.source) == {"cold_start"}
    assert np.isfinite(picks.score_parts["typicality"]).all()


def test_batches_have_no_near_duplicates():
    rng = np.random.default_rng(2)
    groups = normalise(rng.standard_normal((60, 32)))
    X = normalise(np.repeat(groups, 10, axis=0) + 0.01 * rng.standard_normal((600, 32)))
    group = np.repeat(np.arange(60), 10)
    labels = np.arange(60) % 3
    labeled = np.arange(0, 600, 10)[:12]  # one copy of each of the first 12 groups
    probe = LinearProbe().fit(X[labeled], labels[:12])
    picks = select(X, labeled, labels[:12], 20, probe=probe, config=QUIET, rng=0)
    assert len(set(group[picks.indices])) == 20
    sims = X[picks.indices] @ X[picks.indices].T
    assert sims[~np.eye(20, dtype=bool)].max() < 0.95


def test_every_pick_carries_its_score_parts(bands):
    X, _, labeled, labels = bands
    probe = LinearProbe().fit(X[labeled], labels)
    picks = select(X, labeled, labels, 10, probe=probe, rng=0, config=SelectionConfig(audit_share=0.3))
    assert set(picks.score_parts) == set(PART_NAMES)
    assert all(len(v) == 10 for v in picks.score_parts.values())
    chosen = picks.source != "audit"
    assert chosen.any() and (~chosen).any()
    for name in ("uncertainty", "nearest_similarity", "class_similarity"):
        assert np.isfinite(picks.score_parts[name]).all(), name
    assert np.isfinite(picks.score_parts["score"][chosen]).all()
    assert np.isnan(picks.score_parts["score"][~chosen]).all()
    assert len(picks.predicted) == 10


def test_nearest_similarity_part_counts_earlier_picks_of_the_batch():
    X = normalise(
        np.vstack(
            [np.eye(8)[0], np.eye(8)[0] + 0.6 * np.eye(8)[1], np.eye(8)[0] + 0.6 * np.eye(8)[1] + 0.01 * np.eye(8)[2]]
        )
    )
    picks = select(X, [0], [0], 2, strategy="band_only", config=QUIET, rng=0)
    first, second = picks.score_parts["nearest_similarity"]
    assert first < 0.9 and second > 0.99  # the second pick's nearest "labeled" item is the first pick


@pytest.mark.slow
def test_audit_share_controls_uniform_picks(bands):
    X, _, labeled, labels = bands
    probe = LinearProbe().fit(X[labeled], labels)
    all_audit = select(X, labeled, labels, 8, probe=probe, config=SelectionConfig(audit_share=1.0), rng=0)
    assert set(all_audit.source) == {"audit"}
    assert all_audit.predicted is not None and len(all_audit.predicted) == 8
    no_audit = select(X, labeled, labels, 8, probe=probe, config=SelectionConfig(audit_share=0.0), rng=0)
    assert "audit" not in set(no_audit.source)
    rng = np.random.default_rng(3)
    shares = [np.mean(select(X, labeled, labels, 20, probe=probe, rng=rng).source == "audit") for _ in range(40)]
    assert 0.01 < np.mean(shares) < 0.12  # default 5%


def test_zero_labels_and_one_class_work():
    X, y = clusters([100, 100, 100], seed=4)
    for strategy in ALL_STRATEGIES:
        picks = select(X, [], [], 5, strategy=strategy, rng=0)
        assert len(np.unique(picks.indices)) == 5, strategy
    labeled = np.flatnonzero(y == 0)[:5]
    probe = LinearProbe().fit(X[labeled], y[labeled])
    assert len(probe.classes_) == 1
    picks = select(X, labeled, y[labeled], 10, probe=probe, config=SelectionConfig(audit_share=0.0), rng=0)
    # With one class known every pick goes to discovery, away from the labeled cluster.
    assert set(picks.source) == {"discovery"}
    assert np.mean(y[picks.indices] != 0) >= 0.8


def test_discovery_finds_unlabeled_clusters_while_classes_have_few_labels():
    X, y = clusters([150, 150, 150, 150], seed=5)
    labeled = np.r_[np.flatnonzero(y == 0)[:2], np.flatnonzero(y == 1)[:2]]
    probe = LinearProbe().fit(X[labeled], y[labeled])
    picks = select(X, labeled, y[labeled], 2, strategy="discovery", probe=probe, config=QUIET, rng=0)
    assert sorted(y[picks.indices]) == [2, 3]
    mixed = select(
        X, labeled, y[labeled], 40, probe=probe, rng=0, config=SelectionConfig(audit_share=0.0, discovery_share=0.5)
    )
    assert 0 < np.mean(mixed.source == "discovery") < 1


def test_a_session_discovers_every_class_and_classes_grow():
    X, y = clusters([100, 100, 100, 100, 100], spread=0.8, seed=6)
    state = SimilarityState(X)
    labeled, probe, seen = np.zeros(0, np.int64), None, []
    for round_ in range(10):
        picks = select(X, labeled, y[labeled], 5, probe=probe, state=state, rng=round_)
        assert not np.isin(picks.indices, labeled).any()
        state.add_labels(picks.indices, y[picks.indices])
        labeled = np.r_[labeled, picks.indices]
        probe = LinearProbe().fit(X[labeled], y[labeled]) if probe is None else probe.fit(X[labeled], y[labeled])
        seen.append(len(probe.classes_))
    assert seen == sorted(seen) and seen[-1] == 5
    assert probe.predict_proba(X).shape == (500, 5)


def test_every_strategy_returns_distinct_unlabeled_items(bands):
    X, _, labeled, labels = bands
    probe = LinearProbe().fit(X[labeled], labels)
    state = SimilarityState(X).refresh(labeled, labels)
    for strategy in ALL_STRATEGIES:
        picks = select(X, labeled, labels, 15, strategy=strategy, probe=probe, state=state, rng=0)
        assert len(np.unique(picks.indices)) == 15, strategy
        assert not np.isin(picks.indices, labeled).any(), strategy


def test_same_seed_same_picks_and_shortlist_still_fills_the_batch(bands):
    X, _, labeled, labels = bands
    probe = LinearProbe().fit(X[labeled], labels)
    a = select(X, labeled, labels, 10, probe=probe, rng=7)
    b = select(X, labeled, labels, 10, probe=probe, rng=7)
    np.testing.assert_array_equal(a.indices, b.indices)
    small = select(X, labeled, labels, 10, probe=probe, rng=7, config=SelectionConfig(shortlist=4))
    assert len(np.unique(small.indices)) == 10


def test_more_than_the_unlabeled_pool_returns_what_is_left():
    X, y = clusters([5, 5], seed=8)
    picks = select(X, np.arange(7), y[:7], 10, rng=0)
    assert sorted(picks.indices) == [7, 8, 9]


def test_multi_label_probe_selection():
    X, cluster = clusters([60, 60, 60], seed=9)
    Y = np.stack([cluster <= 1, cluster >= 1], axis=1).astype(int)
    labeled = np.arange(0, 180, 9)
    probe = LinearProbe(multi_label=True).fit(X[labeled], Y[labeled], classes=["red", "round"])
    picks = select(X, labeled, Y[labeled], 5, probe=probe, config=QUIET, rng=0)
    assert len(np.unique(picks.indices)) == 5
    assert picks.predicted.shape == (5, 2)


def test_arguments_are_validated(bands):
    X, _, labeled, labels = bands
    with pytest.raises(ValueError, match="unknown strategy"):
        select(X, labeled, labels, 3, strategy="clever")
    with pytest.raises(ValueError, match="repeats"):
        select(X, [1, 1], [0, 0], 3)
    with pytest.raises(ValueError, match="labels"):
        select(X, [1, 2], [0], 3)
    with pytest.raises(ValueError, match="out of date"):
        select(X, labeled, labels, 3, state=SimilarityState(X).refresh(labeled[:2], labels[:2]))
    with pytest.raises(ValueError, match="another embeddings"):
        select(X, labeled, labels, 3, state=SimilarityState(X.copy()).refresh(labeled, labels))
    with pytest.raises(ValueError, match="not fitted"):
        select(X, labeled, labels, 3, probe=LinearProbe())
    with pytest.raises(ValueError, match="non-negative"):
        select(X, labeled, labels, -1)


def test_default_weighs_typicality_only_while_labels_are_few(bands):
    X, kind, labeled, labels = bands
    early = select(X, labeled, labels, 4, config=QUIET, rng=0)
    assert np.isfinite(early.score_parts["typicality"]).all()
    assert set(kind[early.indices]) == {"mid"}  # dense near-copies do not win for being dense
    # 4 labels in 4 classes is not fewer than 1 per class: uncertainty x band alone.
    late = select(
        X,
        labeled,
        labels,
        4,
        config=SelectionConfig(audit_share=0.0, discovery_min_labels=0, typicality_labels_per_class=1),
        rng=0,
    )
    assert np.isnan(late.score_parts["typicality"]).all()
