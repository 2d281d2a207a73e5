"""Typical members of distinct clusters: the cold-start picks, and the TypiClust-style
``"typicality"`` strategy (Hacohen et al., 2022) once some items are labeled."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans


def cluster_assignments(embeddings, n_clusters, *, sample_size=20_000, seed=0, block=65_536):
    """k-means on a random sample of the pool, then every item to its nearest centre.

    Returns
    -------
    ndarray of shape (N,), int
    """
    n = len(embeddings)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, min(n, max(sample_size, 10 * n_clusters)), replace=False))
    kmeans = KMeans(n_clusters=n_clusters, n_init=3, random_state=seed).fit(
        np.asarray(embeddings[sample], dtype=np.float32)
    )
    centres = kmeans.cluster_centers_.astype(np.float32)
    half_norm = 0.5 * (centres**2).sum(axis=1)
    labels = np.empty(n, np.int64)
    for b0 in range(0, n, block):
        rows = np.asarray(embeddings[b0 : b0 + block], dtype=np.float32)
        # argmin ||x - c||^2 = argmax (x . c - ||c||^2 / 2)
        labels[b0 : b0 + block] = (centres @ rows.T - half_norm[:, None]).argmax(axis=0)
    return labels


def typical_cluster_picks(embeddings, labeled, n, *, density, sample_size=20_000, seed=0):
    """One typical unlabeled item from each of ``n`` clusters that hold the fewest labels.

    The pool is cut into ``labeled.sum() + n`` k-means clusters, so at least ``n`` of
    them are left with no label when the labeled items are spread out. Clusters are
    visited by (labels they hold, ascending; size, descending) and each gives its most
    typical unlabeled member.

    Parameters
    ----------
    embeddings : ndarray of shape (N, D)
    labeled : ndarray of shape (N,), bool
    n : int
    density : ndarray of shape (N,)
        Typicality of each item (:func:`core.selection.scorers.typicality`).

    Returns
    -------
    ndarray of shape (min(n, unlabeled),), int
    """
    unlabeled = np.flatnonzero(~labeled)
    n = min(n, len(unlabeled))
    if n == 0:
        return np.zeros(0, np.int64)
    n_clusters = min(int(labeled.sum()) + n, len(embeddings))
    cluster = cluster_assignments(embeddings, n_clusters, sample_size=sample_size, seed=seed)
    labels_in = np.bincount(cluster[labeled], minlength=n_clusters)
    size = np.bincount(cluster, minlength=n_clusters)
    visit = np.lexsort((-size, labels_in))
    # Unlabeled members of each cluster, most typical first.
    members = unlabeled[np.lexsort((-density[unlabeled], cluster[unlabeled]))]
    bounds = np.searchsorted(cluster[members], np.arange(n_clusters + 1))
    picks = []
    depth = 0
    while len(picks) < n:  # a second round only when fewer than n clusters have unlabeled items
        for c in visit:
            if bounds[c] + depth < bounds[c + 1] and len(picks) < n:
                picks.append(members[bounds[c] + depth])
        depth += 1
    return np.asarray(picks, np.int64)
