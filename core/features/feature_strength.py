"""Whether a backbone's features separate the classes labeled so far.

Everything downstream (ranking, suggestions, triage, label issues) inherits the features'
quality, so a user should hear when they are weak rather than blame the labels. The measure is
leave-one-out kNN on the labeled images alone: for each labeled image, do its most similar
labeled images carry its class? It needs no model, costs one (n, n) similarity product, and is
reported as *skill*: balanced accuracy rescaled so that chance is 0 and perfect is 1, which
keeps it comparable across class counts and imbalance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureStrengthConfig:
    """When the measure is trusted and where weak begins.

    Parameters
    ----------
    k : int
        Neighbours voting for each labeled image (similarity-weighted, as DINO's kNN does).
    temperature : float
        Vote weight ``exp(similarity / temperature)``.
    min_labels : int
        Fewer labels than this and nothing is claimed.
    min_per_class : int
        Only classes with at least this many labels take part.
    weak_skill : float
        Skill below this is reported as weak.
    """

    k: int = 10
    temperature: float = 0.07
    min_labels: int = 50
    min_per_class: int = 5
    weak_skill: float = 0.25


@dataclass(frozen=True)
class FeatureStrength:
    """The measure and its verdict.

    ``measured`` is False when too few labels took part; then ``weak`` is False and the other
    figures are NaN. ``accuracy`` is the leave-one-out balanced accuracy, ``chance`` its value for
    guessing, ``skill`` = (accuracy - chance) / (1 - chance), ``neighbour_agreement`` the share of
    labeled images whose single most similar labeled image has the same class.
    """

    n_labels: int
    n_classes: int
    measured: bool
    accuracy: float = float("nan")
    chance: float = float("nan")
    skill: float = float("nan")
    neighbour_agreement: float = float("nan")
    weak: bool = False


def feature_strength(embeddings, labels, *, config=FeatureStrengthConfig()):
    """Leave-one-out kNN skill of the labeled images' features.

    Parameters
    ----------
    embeddings : ndarray of shape (n, d)
        Features of the labeled images (any norm; cosine similarity is used).
    labels : ndarray of shape (n,), int
        Their classes (any integers).
    config : FeatureStrengthConfig

    Returns
    -------
    FeatureStrength
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    labels = np.asarray(labels)
    if embeddings.ndim != 2 or len(embeddings) != len(labels):
        raise ValueError(f"embeddings of shape {embeddings.shape} do not match {len(labels)} labels")
    classes, counts = np.unique(labels, return_counts=True)
    kept = np.isin(labels, classes[counts >= config.min_per_class])
    x, y = embeddings[kept], np.unique(labels[kept], return_inverse=True)[1]
    n_classes = int(y.max()) + 1 if len(y) else 0
    if len(y) < config.min_labels or n_classes < 2:
        return FeatureStrength(n_labels=len(y), n_classes=n_classes, measured=False)
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    similarity = x @ x.T
    np.fill_diagonal(similarity, -np.inf)  # leave one out
    k = min(config.k, len(y) - 1)
    top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    weights = np.exp((np.take_along_axis(similarity, top, axis=1) - 1.0) / config.temperature)
    votes = np.zeros((len(y), n_classes))
    np.add.at(votes, (np.arange(len(y))[:, None], y[top]), weights)
    correct = votes.argmax(axis=1) == y
    accuracy = float(np.mean([correct[y == c].mean() for c in range(n_classes)]))
    chance = 1.0 / n_classes
    skill = (accuracy - chance) / (1.0 - chance)
    agreement = float(np.mean(y[similarity.argmax(axis=1)] == y))
    return FeatureStrength(
        n_labels=len(y),
        n_classes=n_classes,
        measured=True,
        accuracy=accuracy,
        chance=chance,
        skill=skill,
        neighbour_agreement=agreement,
        weak=skill < config.weak_skill,
    )
