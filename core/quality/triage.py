"""Triage of a batch of new items: near-failures, novel items and near-copies of labeled items.

Small scorer functions over numpy arrays plus one entry point, :func:`triage`. Every
item of the batch gets a row; its kinds say why it deserves a look:

``near_failure``
    The model's margin (top probability minus the runner-up) is small: a coin flip.
``novel``
    Far from everything labeled: its most similar labeled item is less similar than
    nearly every labeled item's most similar other labeled item.
``near_copy``
    Almost identical to a labeled item; it would get that item's label.

The report order puts near-failures first (ascending margin), then novel items (least
similar first), then near-copies (most similar first), then the rest (ascending margin).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("near_failure", "novel", "near_copy")


@dataclass(frozen=True)
class TriageConfig:
    """Thresholds of the triage kinds.

    Parameters
    ----------
    near_failure_margin : float
        An item is a near-failure when top probability minus runner-up is below this
        (multi-label: when some class's probability is within ``margin / 2`` of 0.5).
    novel_quantile : float
        Novel when its similarity to the nearest labeled item is below this quantile of
        the labeled items' similarities to their own nearest other labeled item; relative,
        so the rule means the same for any backbone.
    novel_similarity : float or None
        A fixed cosine threshold instead of the quantile rule.
    near_copy_similarity : float
        Cosine similarity at or above which an item is a near-copy of a labeled item.
        Identical files are already merged at ingest; re-encoded or resized copies
        of the bundled backbone's images score above 0.95.
    block_rows : int
        Batch rows compared with the labeled items at a time (bounds memory).
    """

    near_failure_margin: float = 0.2
    novel_quantile: float = 0.01
    novel_similarity: float | None = None
    near_copy_similarity: float = 0.95
    block_rows: int = 4096


@dataclass(frozen=True)
class Triage:
    """Per-item triage of a batch, rows in report order.

    Attributes
    ----------
    order : ndarray of shape (M,), int
        Batch positions in report order; every other array here is already in that order.
    margin : ndarray of shape (M,), float
        NaN where no model separates two classes.
    predicted : ndarray of shape (M,), int
        Row of the most probable class in ``proba`` columns; -1 without a model.
    nearest : ndarray of shape (M,), int
        Position (in the labeled arrays) of the most similar labeled item; -1 without labels.
    similarity : ndarray of shape (M,), float
        Cosine similarity to that item; NaN without labels.
    kinds : ndarray of shape (M, 3), bool
        Columns follow :data:`KINDS`.
    would_get : ndarray of shape (M,), int
        For near-copies, the position of the labeled item whose label the item would get; -1 otherwise.
    novel_threshold : float
        The similarity below which items counted as novel (NaN with fewer than two labels).
    """

    order: np.ndarray
    margin: np.ndarray
    predicted: np.ndarray
    nearest: np.ndarray
    similarity: np.ndarray
    kinds: np.ndarray
    would_get: np.ndarray
    novel_threshold: float


# ----- scorers ---------------------------------------------------------------------------


def top_margin(proba, *, multi_label=False):
    """Top probability minus runner-up, shape (M, K) -> (M,); NaN when K < 2.

    Multi-label: ``min_k |2 p_k - 1|``, the distance of the least certain class from 0.5.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if multi_label:
        if proba.shape[1] == 0:
            return np.full(len(proba), np.nan)
        return np.abs(2 * proba - 1).min(axis=1)
    if proba.shape[1] < 2:
        return np.full(len(proba), np.nan)
    top2 = np.partition(proba, -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def nearest_labeled(batch, labeled, *, block_rows=4096, exclude=None):
    """Most similar labeled item of each batch item, by inner product (cosine on unit rows).

    Parameters
    ----------
    batch : ndarray of shape (M, D)
    labeled : ndarray of shape (L, D)
    block_rows : int
    exclude : ndarray of shape (M,), int, optional
        A labeled position to ignore per batch row (-1: none); to compare labeled items with
        the other labeled items.

    Returns
    -------
    nearest : ndarray of shape (M,), int
        -1 when there is no labeled item.
    similarity : ndarray of shape (M,), float
        NaN when there is no labeled item.
    """
    batch = np.asarray(batch, np.float32)
    labeled = np.asarray(labeled, np.float32)
    nearest = np.full(len(batch), -1, np.int64)
    similarity = np.full(len(batch), np.nan)
    if len(labeled) == 0 or len(batch) == 0:
        return nearest, similarity
    for start in range(0, len(batch), block_rows):
        scores = batch[start : start + block_rows] @ labeled.T
        if exclude is not None:
            rows = np.arange(len(scores))
            skip = np.asarray(exclude[start : start + block_rows])
            scores[rows[skip >= 0], skip[skip >= 0]] = -np.inf
        best = scores.argmax(axis=1)
        value = scores[np.arange(len(scores)), best]
        found = np.isfinite(value)
        nearest[start : start + len(scores)] = np.where(found, best, -1)
        similarity[start : start + len(scores)] = np.where(found, value, np.nan)
    return nearest, similarity


def novelty_threshold(labeled, *, quantile=0.01, block_rows=4096):
    """``quantile`` of the labeled items' similarity to their nearest other labeled item.

    NaN with fewer than two labeled items (nothing is called novel then).
    """
    if len(labeled) < 2:
        return float("nan")
    _, similarity = nearest_labeled(labeled, labeled, block_rows=block_rows, exclude=np.arange(len(labeled)))
    return float(np.quantile(similarity, quantile))


def report_order(kinds, margin, similarity):
    """Near-failures by ascending margin, then novel by ascending similarity, then near-copies
    by descending similarity, then the rest by ascending margin (NaN last). Returns positions."""
    group = np.select([kinds[:, 0], kinds[:, 1], kinds[:, 2]], [0, 1, 2], default=3)
    margin_key = np.where(np.isnan(margin), np.inf, margin)
    similarity_key = np.nan_to_num(similarity, nan=np.inf)
    within = np.select([group == 1, group == 2], [similarity_key, -similarity_key], default=margin_key)
    return np.lexsort((within, group))


# ----- entry point -----------------------------------------------------------------------


def triage(batch_embeddings, proba, labeled_embeddings, *, multi_label=False, config=TriageConfig()):
    """Triage a batch against the labeled items and a model's probabilities.

    Parameters
    ----------
    batch_embeddings : ndarray of shape (M, D), L2-normalised
    proba : ndarray of shape (M, K) or None
        The model's probabilities for the batch; None without a model.
    labeled_embeddings : ndarray of shape (L, D), L2-normalised
    multi_label : bool
    config : TriageConfig

    Returns
    -------
    Triage
    """
    batch_embeddings = np.asarray(batch_embeddings, np.float32)
    labeled_embeddings = np.asarray(labeled_embeddings, np.float32)
    if batch_embeddings.ndim != 2 or labeled_embeddings.ndim != 2:
        raise ValueError(f"embeddings must be 2-D; got {batch_embeddings.shape} and {labeled_embeddings.shape}")
    if len(labeled_embeddings) and batch_embeddings.shape[1] != labeled_embeddings.shape[1]:
        raise ValueError(
            f"batch dim {batch_embeddings.shape[1]} differs from labeled dim {labeled_embeddings.shape[1]}"
        )
    m = len(batch_embeddings)
    if proba is None:
        margin, predicted = np.full(m, np.nan), np.full(m, -1, np.int64)
    else:
        proba = np.asarray(proba, np.float64)
        if proba.shape[0] != m:
            raise ValueError(f"proba has {proba.shape[0]} rows for {m} batch items")
        margin = top_margin(proba, multi_label=multi_label)
        predicted = proba.argmax(axis=1) if proba.shape[1] else np.full(m, -1, np.int64)
    nearest, similarity = nearest_labeled(batch_embeddings, labeled_embeddings, block_rows=config.block_rows)
    threshold = (
        config.novel_similarity
        if config.novel_similarity is not None
        else novelty_threshold(labeled_embeddings, quantile=config.novel_quantile, block_rows=config.block_rows)
    )
    with np.errstate(invalid="ignore"):
        kinds = np.stack(
            [margin < config.near_failure_margin, similarity < threshold, similarity >= config.near_copy_similarity],
            axis=1,
        )
    would_get = np.where(kinds[:, 2], nearest, -1)
    order = report_order(kinds, margin, similarity)
    return Triage(
        order=order,
        margin=margin[order],
        predicted=predicted[order],
        nearest=nearest[order],
        similarity=similarity[order],
        kinds=kinds[order],
        would_get=would_get[order],
        novel_threshold=float(threshold),
    )
