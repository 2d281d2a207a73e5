"""Neighbourhood-preserving 2D maps of embeddings (t-SNE), for the Explore page.

t-SNE costs far more than PCA, so the map covers a sample of the pool: every labeled
item, then a fixed-seed random sample of the unlabeled ones, up to a cap
(:func:`map_sample`); the sample is reduced to a few dozen dimensions with PCA before
t-SNE runs (:func:`tsne_2d`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits


@dataclass(frozen=True)
class TsneConfig:
    """How a t-SNE map is made.

    Attributes
    ----------
    max_points : int
        Items the map covers at most (:func:`map_sample`).
    pca_dims : int
        Dimensions PCA reduces the embeddings to before t-SNE.
    perplexity : float
        t-SNE's effective number of neighbours; lowered to ``(n - 1) / 3`` for small samples.
    max_iter : int
        t-SNE optimisation steps (scikit-learn needs at least 250).
    seed : int
        Seeds the sample and t-SNE, so the same pool gives the same map.
    threads : int or None
        Threads t-SNE may use; None: half the cores, so that the app's labeling keeps
        the rest while a map is made in the background.
    """

    max_points: int = 10_000
    pca_dims: int = 50
    perplexity: float = 30.0
    max_iter: int = 1000
    seed: int = 0
    threads: int | None = None


def map_sample(labeled: np.ndarray, max_points: int, *, seed: int = 0) -> np.ndarray:
    """Rows a map covers: every labeled row, then a random sample of the unlabeled ones.

    When more rows are labeled than ``max_points``, the cap wins: a random sample of the
    labeled rows.

    Parameters
    ----------
    labeled : ndarray of shape (N,), bool
        Whether each row is labeled.
    max_points : int
        Rows to return at most.
    seed : int
        Seeds the random sample.

    Returns
    -------
    ndarray of shape (min(N, max_points),), int64
        Row numbers, ascending, without repeats.
    """
    labeled = np.asarray(labeled, bool)
    if len(labeled) <= max_points:
        return np.arange(len(labeled), dtype=np.int64)
    rng = np.random.default_rng(seed)
    labeled_rows, unlabeled_rows = np.flatnonzero(labeled), np.flatnonzero(~labeled)
    if len(labeled_rows) >= max_points:
        return np.sort(rng.choice(labeled_rows, max_points, replace=False)).astype(np.int64)
    extra = rng.choice(unlabeled_rows, max_points - len(labeled_rows), replace=False)
    return np.sort(np.concatenate([labeled_rows, extra])).astype(np.int64)


def pca_reduce(points: np.ndarray, dims: int, *, fit_size: int | None = None, seed: int = 0) -> np.ndarray:
    """Centre ``points`` and project them on their first ``dims`` principal components.

    Parameters
    ----------
    points : ndarray of shape (N, D)
    dims : int
    fit_size : int or None
        Rows the components are fitted on: a fixed-seed random sample of this many (every
        row is still projected); None fits on every row.
    seed : int
        Seeds that sample.

    Returns
    -------
    ndarray of shape (N, min(dims, D)), float32
    """
    fit = points
    if fit_size is not None and len(points) > fit_size:
        fit = points[np.sort(np.random.default_rng(seed).choice(len(points), fit_size, replace=False))]
    fit = np.asarray(fit, np.float32)
    mean = fit.mean(axis=0)
    fit = fit - mean
    centred = np.asarray(points, np.float32) - mean
    if centred.shape[1] <= dims:
        return centred
    # Eigenvectors of the (D, D) scatter matrix: one matrix product over the fitted rows, far
    # cheaper than an SVD of the (N, D) rows when N is in the thousands.
    _, vectors = np.linalg.eigh((fit.T @ fit).astype(np.float64))
    components = vectors[:, ::-1][:, :dims].astype(np.float32)  # largest eigenvalues first
    return centred @ components


def tsne_2d(points: np.ndarray, config: TsneConfig = TsneConfig()) -> np.ndarray:
    """A t-SNE map of ``points``: near neighbours in the embedding space stay near in 2D.

    The points are first reduced to ``config.pca_dims`` dimensions with PCA. Fewer than
    two points all map to the origin.

    Parameters
    ----------
    points : ndarray of shape (N, D)
        The rows to map (already sampled: every row is mapped).
    config : TsneConfig

    Returns
    -------
    ndarray of shape (N, 2), float32
    """
    n = len(points)
    if n < 2:
        return np.zeros((n, 2), np.float32)
    reduced = pca_reduce(points, config.pca_dims)
    perplexity = max(min(config.perplexity, (n - 1) / 3), 1.0)  # t-SNE needs perplexity < N
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        max_iter=max(config.max_iter, 250),
        init="pca",
        learning_rate="auto",
        random_state=config.seed,
    )
    threads = config.threads or max(1, (os.cpu_count() or 2) // 2)
    with threadpool_limits(threads):  # OpenMP (t-SNE's gradient) and BLAS alike
        return tsne.fit_transform(reduced).astype(np.float32)
