"""Label issues: which given labels out-of-fold probabilities say are probably wrong.

cleanlab's confident learning (``cleanlab.filter.find_label_issues``) flags the issues;
they are ranked by self-confidence (the out-of-fold probability of the given label,
lowest first) and each gets a suggested label, the out-of-fold argmax.

Multi-label (:func:`find_multilabel_issues`): cleanlab's one-vs-rest reduction
(``cleanlab.multilabel_classification``) on the out-of-fold sigmoid probabilities; the
flagged items are ranked by cleanlab's multi-label label-quality score, lowest first, and
each gets a suggested class set (out-of-fold probability >= 0.5, else the top class).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.multilabel_classification.filter import find_multilabel_issues_per_class
from cleanlab.multilabel_classification.rank import get_label_quality_scores
from cleanlab.rank import get_label_quality_scores as get_binary_label_quality_scores


@dataclass(frozen=True)
class LabelIssueConfig:
    """How issues are found.

    Parameters
    ----------
    filter_by : str
        cleanlab's rule; ``prune_by_noise_rate`` is its default and the most precise
        on the planted-error tests.
    min_labels : int
        Fewer labeled items than this give no queue: out-of-fold probabilities of a
        handful of labels say little.
    """

    filter_by: str = "prune_by_noise_rate"
    min_labels: int = 10


@dataclass(frozen=True)
class LabelIssues:
    """The review queue, most suspicious first.

    Attributes
    ----------
    positions : ndarray of shape (Q,), int
        Positions of the flagged items among the labeled items.
    given, suggested : ndarray of shape (Q,), int
        Column of the given label and of the out-of-fold argmax.
    self_confidence : ndarray of shape (Q,), float
        Out-of-fold probability of the given label.
    confusion : ndarray of shape (K, K), int
        Counts over every labeled item: rows the given label, columns the out-of-fold argmax.
    """

    positions: np.ndarray
    given: np.ndarray
    suggested: np.ndarray
    self_confidence: np.ndarray
    confusion: np.ndarray


def confusion_counts(given, predicted, n_classes):
    """Counts of (given, predicted) pairs, ndarray of shape (K, K), rows the given label."""
    counts = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(counts, (np.asarray(given), np.asarray(predicted)), 1)
    return counts


def find_issues(labels, oof_proba, *, config=LabelIssueConfig()):
    """Rank the labeled items whose given label is probably wrong.

    Parameters
    ----------
    labels : ndarray of shape (n,), int
        Column of each item's given label in ``oof_proba``.
    oof_proba : ndarray of shape (n, K)
        Out-of-fold probabilities (each row from a model fit without that item).
    config : LabelIssueConfig

    Returns
    -------
    LabelIssues
    """
    labels = np.asarray(labels, np.int64)
    oof_proba = np.asarray(oof_proba, np.float64)
    if oof_proba.ndim != 2 or len(oof_proba) != len(labels):
        raise ValueError(f"need labels (n,) and oof_proba (n, K); got {labels.shape} and {oof_proba.shape}")
    n_classes = oof_proba.shape[1]
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must be columns of oof_proba, 0..{n_classes - 1}")
    suggested_all = oof_proba.argmax(axis=1) if n_classes else labels
    confusion = confusion_counts(labels, suggested_all, n_classes)
    empty = np.zeros(0, np.int64)
    # cleanlab needs every column to be some item's label and at least two of them.
    present = np.unique(labels)
    if len(labels) < config.min_labels or len(present) < 2:
        return LabelIssues(empty, empty, empty, np.zeros(0), confusion)
    proba = oof_proba[:, present]
    proba = proba / proba.sum(axis=1, keepdims=True).clip(1e-12)
    compact = np.searchsorted(present, labels)
    positions = find_label_issues(
        compact, proba, filter_by=config.filter_by, return_indices_ranked_by="self_confidence"
    )
    positions = np.asarray(positions, np.int64)
    return LabelIssues(
        positions=positions,
        given=labels[positions],
        suggested=suggested_all[positions],
        self_confidence=oof_proba[positions, labels[positions]],
        confusion=confusion,
    )


# ----- multi-label -----------------------------------------------------------------------


@dataclass(frozen=True)
class MultiLabelIssues:
    """The multi-label review queue, worst label quality first.

    Attributes
    ----------
    positions : ndarray of shape (Q,), int
        Positions of the flagged items among the labeled items.
    quality : ndarray of shape (Q,), float
        cleanlab's label-quality score of each flagged item's class set (0..1, lower is worse).
    given, suggested, doubted : ndarray of shape (Q, K), bool
        Given class set, suggested class set (:func:`suggested_sets`) and the classes that
        cleanlab's one-vs-rest check flagged, per flagged item.
    n_labels, n_flagged : ndarray of shape (K,), int
        Per column: items given the class; flagged items whose class is among ``doubted``.
    precision, recall : ndarray of shape (K,), float
        Per column, over every labeled item, of the suggested sets against the given ones;
        NaN where undefined (no item suggested, or none given the class).
    """

    positions: np.ndarray
    quality: np.ndarray
    given: np.ndarray
    suggested: np.ndarray
    doubted: np.ndarray
    n_labels: np.ndarray
    n_flagged: np.ndarray
    precision: np.ndarray
    recall: np.ndarray


def suggested_sets(oof_proba, threshold=0.5):
    """Suggested class sets, ndarray of shape (n, K), bool: the columns with probability >=
    ``threshold``; a row with none gets its most probable column."""
    proba = np.asarray(oof_proba, np.float64)
    chosen = proba >= threshold
    if proba.shape[1]:
        empty = np.flatnonzero(~chosen.any(axis=1))
        chosen[empty, proba[empty].argmax(axis=1)] = True
    return chosen


def _ratio(numerator, denominator):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def find_multilabel_issues(given, oof_proba, *, config=LabelIssueConfig(), threshold=0.5):
    """Rank the labeled items whose given class set is probably wrong.

    cleanlab's ``multilabel_classification.filter.find_label_issues`` flags an item when any
    of its classes looks wrongly given or wrongly left out, by confident learning on each
    class against the rest; this calls the per-class form behind it
    (``find_multilabel_issues_per_class``, whose any-over-classes is exactly that flag) to
    also say which classes. Columns that no labeled item has, or that every one has, are
    left out of cleanlab's input (it needs both values in every column); their classes are
    never doubted. The flagged items are ordered by
    ``multilabel_classification.rank.get_label_quality_scores``, lowest first.

    Parameters
    ----------
    given : ndarray of shape (n, K), 0/1
        Each labeled item's class set as an indicator over the columns of ``oof_proba``.
    oof_proba : ndarray of shape (n, K)
        Out-of-fold one-vs-rest probabilities (each row from a model fit without that item).
    config : LabelIssueConfig
        ``min_labels`` labeled items and two classes in use are needed for a queue.
    threshold : float
        Out-of-fold probability from which a class is suggested.

    Returns
    -------
    MultiLabelIssues
    """
    given = np.asarray(given).astype(bool)
    oof_proba = np.asarray(oof_proba, np.float64)
    if given.ndim != 2 or given.shape != oof_proba.shape:
        raise ValueError(f"need given and oof_proba of the same shape (n, K); got {given.shape} and {oof_proba.shape}")
    n, n_classes = given.shape
    suggested = suggested_sets(oof_proba, threshold)
    n_labels = given.sum(axis=0)
    both = (given & suggested).sum(axis=0)
    precision, recall = _ratio(both, suggested.sum(axis=0)), _ratio(both, n_labels)
    doubted = np.zeros((n, n_classes), bool)
    usable = np.flatnonzero((n_labels > 0) & (n_labels < n))  # cleanlab needs both values in a column
    if n >= config.min_labels and np.count_nonzero(n_labels) >= 2 and len(usable):
        labels = given[:, usable]
        proba = oof_proba[:, usable].clip(0.0, 1.0)
        if len(usable) == 1:
            # cleanlab's multi-label functions need two columns; one column is the binary case
            # they reduce to (and the multi-label score of one class is its binary score).
            binary, binary_proba = labels[:, 0].astype(np.int64), np.column_stack([1 - proba[:, 0], proba[:, 0]])
            doubted[:, usable[0]] = find_label_issues(binary, binary_proba, filter_by=config.filter_by, n_jobs=1)
            quality = get_binary_label_quality_scores(binary, binary_proba)
        else:
            lists = [np.flatnonzero(row).tolist() for row in labels]
            # n_jobs=1: cleanlab's process pool costs ~0.5 s per call and gains nothing on these sizes.
            doubted[:, usable] = find_multilabel_issues_per_class(lists, proba, filter_by=config.filter_by, n_jobs=1)
            quality = get_label_quality_scores(lists, proba)
        flagged = np.flatnonzero(doubted.any(axis=1))
        positions = flagged[np.argsort(quality[flagged], kind="stable")]
        quality = np.asarray(quality, np.float64)[positions]
    else:
        positions, quality = np.zeros(0, np.int64), np.zeros(0)
    return MultiLabelIssues(
        positions=positions,
        quality=quality,
        given=given[positions],
        suggested=suggested[positions],
        doubted=doubted[positions],
        n_labels=n_labels,
        n_flagged=doubted.sum(axis=0),
        precision=precision,
        recall=recall,
    )
