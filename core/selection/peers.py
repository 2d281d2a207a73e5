"""Published active-learning strategies from scikit-activeml, as selection baselines.

Each peer has the signature of our strategies in the simulator:
``pick(embeddings, labeled_idx, labels, n, *, rng, classes) -> indices``.
The peers know the full class list (``classes``), as scikit-activeml expects; our own
strategies do not need it.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression

PEERS = ("random", "margin", "typiclust", "probcover", "coreset")


def _partial_labels(n_items, labeled_idx, labels):
    y = np.full(n_items, np.nan)
    y[np.asarray(labeled_idx, int)] = labels
    return y


def _seed(rng):
    return int(rng.integers(2**31 - 1))


def peer_pick(name, embeddings, labeled_idx, labels, n, *, rng, classes):
    """The next ``n`` pool rows by peer strategy ``name`` (one of :data:`PEERS`).

    Parameters
    ----------
    embeddings : ndarray of shape (N, D)
    labeled_idx : ndarray of shape (L,), int
    labels : ndarray of shape (L,), int
    n : int
    rng : numpy.random.Generator
    classes : ndarray of shape (K,)

    Returns
    -------
    ndarray of shape (n,), int
    """
    from skactiveml.classifier import SklearnClassifier
    from skactiveml.pool import CoreSet, ProbCover, RandomSampling, TypiClust, UncertaintySampling

    X = embeddings.astype(np.float32, copy=False)
    y = _partial_labels(len(X), labeled_idx, labels)
    seed = _seed(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "random":
            return RandomSampling(random_state=seed).query(X, y, batch_size=n)
        if name == "margin":
            if len(np.unique(labels)) < 2:  # no classifier to be unsure with yet
                return RandomSampling(random_state=seed).query(X, y, batch_size=n)
            clf = SklearnClassifier(LogisticRegression(max_iter=1000), classes=classes, random_state=seed)
            return UncertaintySampling(method="margin_sampling", random_state=seed).query(X, y, clf=clf, batch_size=n)
        if name == "typiclust":
            return TypiClust(random_state=seed).query(X, y, batch_size=n)
        if name == "probcover":
            return ProbCover(n_classes=len(classes), random_state=seed).query(X, y, batch_size=n)
        if name == "coreset":
            return CoreSet(random_state=seed).query(X, y, batch_size=n)
    raise ValueError(f"unknown peer strategy {name!r}; choose from {', '.join(PEERS)}")
