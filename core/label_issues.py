"""Label issues: which given labels out-of-fold probabilities say are probably wrong.

cleanlab's confident learning (``cleanlab.filter.find_label_issues``) flags the issues;
they are ranked by self-confidence (the out-of-fold probability of the given label,
lowest first) and each gets a suggested label, the out-of-fold argmax.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cleanlab.filter import find_label_issues


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
    positions = find_label_issues(compact, proba, filter_by=config.filter_by,
                                  return_indices_ranked_by="self_confidence")
    positions = np.asarray(positions, np.int64)
    return LabelIssues(positions=positions, given=labels[positions], suggested=suggested_all[positions],
                       self_confidence=oof_proba[positions, labels[positions]], confusion=confusion)
