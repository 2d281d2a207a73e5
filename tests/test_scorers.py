import numpy as np
import pytest

from core.selection import scorers
from tests.engine_data import clusters, normalise

UNIFORM = np.full((1, 4), 0.25)
CERTAIN = np.array([[1.0, 0.0, 0.0, 0.0]])
LEANING = np.array([[0.6, 0.3, 0.1, 0.0]])


@pytest.mark.parametrize("name", ["margin", "entropy", "least_confidence"])
def test_uncertainty_is_one_when_uniform_zero_when_certain_and_ordered(name):
    score = scorers.UNCERTAINTY[name]
    assert score(UNIFORM)[0] == pytest.approx(1.0)
    assert score(CERTAIN)[0] == pytest.approx(0.0)
    assert 0 < score(LEANING)[0] < 1
    assert score(np.ones((3, 1))).tolist() == [0, 0, 0]  # one class: nothing to be unsure about


def test_margin_looks_at_the_top_two_only():
    a = np.array([[0.45, 0.45, 0.10]])
    b = np.array([[0.50, 0.25, 0.25]])
    assert scorers.margin(a)[0] > scorers.margin(b)[0]


def test_multilabel_uncertainty_follows_the_least_certain_class():
    proba = np.array([[0.99, 0.5], [0.99, 0.01]])
    u = scorers.multilabel_uncertainty(proba, "margin")
    assert u[0] == pytest.approx(1.0)
    assert u[1] < 0.05


def test_band_peaks_at_the_centre_and_falls_off_both_ways():
    s = np.array([0.2, 0.5, 0.6, 0.7, 0.99])
    b = scorers.band(s, center=0.6, width=0.1)
    assert b[2] == 1.0
    assert b[1] == pytest.approx(b[3])
    assert b[0] < 0.01 and b[4] < 0.01


def test_band_parameters_follow_the_pool_and_can_be_fixed():
    rng = np.random.default_rng(0)
    low = rng.uniform(0.1, 0.5, 1000)
    c_low, w_low = scorers.band_parameters(low)
    c_high, _ = scorers.band_parameters(low + 0.4)
    assert c_low == pytest.approx(0.3, abs=0.02) and w_low == pytest.approx(0.1, abs=0.02)
    assert c_high == pytest.approx(c_low + 0.4)
    assert scorers.band_parameters(low, center=0.8, width=0.05) == (0.8, 0.05)
    assert scorers.band_parameters(low, center_quantile=0.9)[0] == pytest.approx(0.46, abs=0.02)
    assert scorers.band_parameters(np.full(5, -np.inf)) == (0.0, 1.0)  # nothing labeled yet


def test_typicality_ranks_cluster_members_above_outliers_and_excludes_self():
    X, _ = clusters([100], spread=0.3)
    outliers = normalise(np.random.default_rng(1).standard_normal((5, X.shape[1])))
    pool = np.vstack([X, outliers])
    t = scorers.typicality(pool, k=10)
    assert t[:100].min() > t[100:].max()
    # An isolated item is not its own neighbour: its typicality is far from 1.
    assert t[100:].max() < 0.5


def test_typicality_against_a_reference_sample_keeps_the_ranking():
    X, _ = clusters([300, 30], spread=0.8)
    full = scorers.typicality(X, k=10)
    sample = np.arange(0, 330, 3)
    sampled = scorers.typicality(X, k=5, reference=X[sample], reference_index=sample)
    assert np.corrcoef(full, sampled)[0, 1] > 0.8


def test_get_scores_default_is_uncertainty_times_band():
    proba = np.array([[0.5, 0.5], [0.5, 0.5], [1.0, 0.0]])
    similarity = np.array([0.6, 0.95, 0.6])
    score, parts = scorers.get_scores("default", proba=proba, similarity=similarity, band_center=0.6, band_width=0.1)
    np.testing.assert_allclose(score, parts["uncertainty"] * parts["band"])
    assert np.argmax(score) == 0
    assert set(parts) == {"uncertainty", "band"}


def test_typical_preference_favours_dense_items_up_to_the_ceiling():
    density = np.array([0.9, 0.8, 0.7, 0.95])
    weight = scorers.typical_preference(density, 8.0, 0.9)
    assert weight[0] == 1.0 and weight[3] == 1.0  # at or above the ceiling: all equal
    assert weight[0] > weight[1] > weight[2] > 0
    np.testing.assert_allclose(weight[1], (0.8 / 0.9) ** 8)
    assert scorers.typical_preference(density, 0.0, 0.9).tolist() == [1, 1, 1, 1]


def test_get_scores_default_with_a_typicality_power_multiplies_in_typicality():
    proba = np.full((3, 2), 0.5)
    similarity = np.full(3, 0.6)
    density = np.array([0.9, 0.6, 0.99])
    score, parts = scorers.get_scores(
        "default",
        proba=proba,
        similarity=similarity,
        band_center=0.6,
        band_width=0.1,
        density=density,
        typicality_power=8.0,
        typicality_ceiling=0.9,
    )
    np.testing.assert_allclose(score, parts["uncertainty"] * parts["band"] * parts["typicality"])
    assert score[0] == score[2] > score[1]
    with pytest.raises(ValueError, match="needs density"):
        scorers.get_scores(
            "default", proba=proba, similarity=similarity, band_center=0.6, band_width=0.1, typicality_power=8.0
        )


def test_get_scores_without_an_informative_probe_takes_uncertainty_as_one():
    score, parts = scorers.get_scores(
        "default", proba=np.ones((2, 1)), similarity=np.array([0.6, 0.9]), band_center=0.6, band_width=0.1
    )
    assert parts["uncertainty"].tolist() == [1, 1]
    assert score[0] > score[1]


def test_discovery_prefers_dense_unexplored_regions_over_outliers_and_covered_ones():
    similarity = np.array([0.1, 0.1, 0.9])
    density = np.array([0.8, 0.1, 0.8])  # dense & far, outlier & far, dense & covered
    score, _ = scorers.get_scores("discovery", similarity=similarity, density=density)
    assert np.argmax(score) == 0
    assert score[0] > score[1] and score[0] > score[2]


def test_get_scores_validates_in_one_place():
    with pytest.raises(ValueError, match="unknown strategy"):
        scorers.get_scores("best", proba=UNIFORM)
    with pytest.raises(ValueError, match="needs similarity"):
        scorers.get_scores("band_only", proba=UNIFORM)
    with pytest.raises(ValueError, match="same items"):
        scorers.get_scores("default", proba=UNIFORM, similarity=np.zeros(3), band_center=0, band_width=1)
    with pytest.raises(ValueError, match="unknown uncertainty"):
        scorers.get_scores(
            "default", proba=UNIFORM, similarity=np.zeros(1), band_center=0, band_width=1, uncertainty="vibes"
        )


def test_random_scores_are_uniform_and_seeded():
    similarity = np.zeros(5000)
    score, parts = scorers.get_scores("random", similarity=similarity, rng=np.random.default_rng(0))
    again, _ = scorers.get_scores("random", similarity=similarity, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(score, again)
    assert set(parts) == {"random"} and 0.45 < score.mean() < 0.55 and score.min() >= 0 and score.max() < 1


def test_get_scores_takes_precomputed_uncertainty_instead_of_probabilities():
    proba = np.array([[0.5, 0.5], [0.9, 0.1], [0.7, 0.3]])
    similarity = np.array([0.1, 0.5, 0.9])
    from_proba, _ = scorers.get_scores("default", proba=proba, similarity=similarity, band_center=0.5, band_width=0.2)
    given, parts = scorers.get_scores(
        "default", uncertainty_values=scorers.margin(proba), similarity=similarity, band_center=0.5, band_width=0.2
    )
    np.testing.assert_allclose(given, from_proba)
    np.testing.assert_allclose(parts["uncertainty"], [1.0, 0.2, 0.6])
    with pytest.raises(ValueError, match="same items"):
        scorers.get_scores(
            "default", uncertainty_values=np.ones(2), similarity=similarity, band_center=0.5, band_width=0.2
        )
