import numpy as np

from core.features.feature_strength import FeatureStrengthConfig, feature_strength


def clusters(n_per_class, n_classes, spread, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, 32))
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return centres[labels] + spread * rng.normal(size=(len(labels), 32)), labels


def test_separated_classes_are_strong():
    x, y = clusters(20, 4, spread=0.1)
    strength = feature_strength(x, y)
    assert strength.measured and not strength.weak
    assert strength.skill > 0.9 and strength.neighbour_agreement > 0.9


def test_features_unrelated_to_the_labels_are_weak():
    x, _ = clusters(20, 4, spread=0.1)
    y = np.random.default_rng(1).permutation(np.repeat(np.arange(4), 20))
    strength = feature_strength(x, y)
    assert strength.measured and strength.weak
    assert abs(strength.skill) < 0.3


def test_skill_is_balanced_so_a_majority_class_does_not_hide_weakness():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(100, 16))
    y = np.array([0] * 90 + [1] * 10)  # plain accuracy of always saying 0 would be 0.9
    assert feature_strength(x, y).weak


def test_too_few_labels_claim_nothing():
    x, y = clusters(3, 4, spread=0.1)  # 12 labels, 3 per class: under both minimums
    strength = feature_strength(x, y)
    assert not strength.measured and not strength.weak and np.isnan(strength.skill)


def test_classes_with_too_few_labels_are_left_out():
    x, y = clusters(20, 3, spread=0.1)
    x = np.vstack([x, np.zeros((2, 32))])
    y = np.concatenate([y, [7, 7]])
    strength = feature_strength(x, y, config=FeatureStrengthConfig(min_per_class=5))
    assert strength.n_classes == 3 and strength.n_labels == 60
