"""Failure slices: a neighbourhood of example embeddings, re-mined after every retrain.

A slice is given by a few example items. Its neighbourhood is every item whose cosine
similarity to its most similar example is at least a threshold; the threshold is fixed
when the slice is created, as the similarity of the ``k``-th nearest item then, so new
items that arrive near the examples join the slice and old members stay in it.
Re-mining ranks the slice's unlabeled members by the model's uncertainty.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from core.selection.scorers import margin, multilabel_uncertainty


@dataclass(frozen=True)
class SliceConfig:
    """Defaults of a new slice and of its per-version metrics.

    Parameters
    ----------
    k : int
        Size of the neighbourhood when the slice is created (examples included).
    accuracy_folds : int
        Labeled members are split in this many folds; each fold is predicted by the model
        refit without it, so accuracy on members is measured on labels the fit did not see.
    top_mined : int
        Mined members kept per model version.
    block_rows : int
        Pool rows compared with the examples at a time.
    """

    k: int = 50
    accuracy_folds: int = 3
    top_mined: int = 100
    block_rows: int = 65536


def similarity_to_examples(embeddings, examples, *, block_rows=65536):
    """Cosine similarity of each item to its most similar example, (N, D) x (E, D) -> (N,)."""
    embeddings = np.asarray(embeddings, np.float32)
    examples = np.asarray(examples, np.float32)
    if len(examples) == 0:
        raise ValueError("a slice needs at least one example")
    best = np.empty(len(embeddings), np.float32)
    for start in range(0, len(embeddings), block_rows):
        best[start : start + block_rows] = (embeddings[start : start + block_rows] @ examples.T).max(axis=1)
    return best


def threshold_for_k(similarity, k):
    """The similarity of the ``k``-th most similar item: the neighbourhood's threshold."""
    if len(similarity) == 0:
        raise ValueError("no items to build a neighbourhood from")
    k = int(np.clip(k, 1, len(similarity)))
    return float(np.partition(similarity, len(similarity) - k)[len(similarity) - k])


def remine(similarity, threshold, uncertainty, labeled):
    """Unlabeled members, most uncertain first (ties: more similar first).

    Parameters
    ----------
    similarity : ndarray of shape (N,)
        From :func:`similarity_to_examples`.
    threshold : float
    uncertainty : ndarray of shape (N,) or None
        Higher means less sure (e.g. :func:`core.selection.scorers.margin`); None ranks by similarity.
    labeled : ndarray of shape (N,), bool

    Returns
    -------
    ndarray of int
        Pool positions.
    """
    candidates = np.flatnonzero((similarity >= threshold) & ~np.asarray(labeled, bool))
    key = np.zeros(len(candidates)) if uncertainty is None else -np.asarray(uncertainty, np.float64)[candidates]
    return candidates[np.lexsort((-similarity[candidates], key))]


def uncertainty_of(proba, *, multi_label=False):
    """Margin uncertainty (1 - top + runner-up) of probabilities (N, K) -> (N,); multi-label:
    that of the least certain class's yes/no decision."""
    proba = np.asarray(proba, np.float64)
    return multilabel_uncertainty(proba, "margin") if multi_label else margin(proba)


def heldout_member_predictions(probe, X, y, members, *, n_folds=3, random_state=0, classes=None):
    """Predict labeled slice members with fits that did not see them.

    Members are split in ``n_folds`` folds; each fold is predicted by a copy of ``probe``
    refit (warm-started, no out-of-fold fits) on every labeled item outside the fold.

    Parameters
    ----------
    probe : core.model.probe.LinearProbe
        The fitted model of this version (single- or multi-label).
    X : ndarray of shape (n, D)
        Every labeled item's embedding.
    y : ndarray of shape (n,), or (n, K) 0/1 indicator when the probe is multi-label
        Every labeled item's class (set).
    members : ndarray of int
        Positions in ``X`` of the slice's labeled members.
    n_folds : int
    random_state : int
    classes : array-like or None
        Columns of a multi-label ``y``; default the probe's classes.

    Returns
    -------
    ndarray of shape (len(members),), or (len(members), K) when multi-label
        Predicted class (set) of each member, in ``members`` order.
    """
    members, y = np.asarray(members, np.int64), np.asarray(y)
    classes = probe.classes_ if classes is None else np.asarray(classes)
    predicted = np.empty((len(members),) + y.shape[1:], dtype=y.dtype)
    if len(members) == 0:
        return predicted
    folds = np.random.default_rng(random_state).permutation(len(members)) % max(1, min(n_folds, len(members)))
    for fold in np.unique(folds):
        held = members[folds == fold]
        train = np.ones(len(X), bool)
        train[held] = False
        refit = copy.deepcopy(probe)
        refit.n_folds, refit.warm_start = 0, True  # one fit; the argmax needs no calibration
        refit.fit(X[train], y[train], classes=classes)
        predicted[folds == fold] = refit.predict(X[held])
    return predicted


def accuracy(given, predicted):
    """Fraction of equal rows (a class, or a whole 0/1 class-set row when multi-label); NaN when empty."""
    given, predicted = np.asarray(given), np.asarray(predicted)
    if len(given) == 0:
        return float("nan")
    return float(np.mean((given == predicted).reshape(len(given), -1).all(axis=1)))
