"""Label issues: which given labels out-of-fold probabilities say are probably wrong.

cleanlab's confident learning (``cleanlab.filter.find_label_issues``) proposes the issues
and a flag is kept only where the evidence is strong: the calibrated out-of-fold probability
of the given label is at most ``max_given_proba``. Confident learning alone flags the model's
own mistakes too: its noise estimate counts every confidently misclassified item, so with a
60%-accurate probe it flagged ~25% of the labels when 10% were wrong (precision ~0.3 on
bundled-backbone CIFAR-10, benchmarks/bench_label_issues.py). The flags are ranked by
self-confidence (the out-of-fold probability of the given label, lowest first); each gets a
suggested label, the out-of-fold argmax, and a confidence, one minus the self-confidence.

No flags at all, and a warning, when the evidence cannot be strong: fewer than
``min_per_class`` labels in some class, or out-of-fold accuracy too near chance (skill, the
accuracy rescaled so that always answering the most frequent class is 0 and perfect is 1,
below ``min_skill``). A queue of false alarms invites overwriting correct labels.

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
    max_given_proba : float
        A flag needs the calibrated out-of-fold probability of the given label at most this.
        0.05 kept precision >= 0.6 from 300 CIFAR-10 labels (0.1: ~0.45; 0.02: ~0.8 at
        recall ~0.45); it is a probability, so it means the same for any class count.
    min_per_class : int
        Every class in use needs this many labels for any flag: with 10 a class, a
        10-class probe's out-of-fold argmax is wrong for half the items and the
        flags were one in two false alarms (precision 0.3-0.5).
    min_skill : float
        Out-of-fold skill (0 chance, 1 perfect) needed for any flag.
    """

    filter_by: str = "prune_by_noise_rate"
    min_labels: int = 10
    max_given_proba: float = 0.05
    min_per_class: int = 20
    min_skill: float = 0.3


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
    accuracy : float
        Out-of-fold accuracy against the given labels (NaN without labels).
    chance : float
        Accuracy of always answering the most frequent given label (NaN without labels).
    warning : str or None
        Why there are no flags although there are labels: too few labels, too few per
        class, or a model too near chance. None when the flags were looked for.
    """

    positions: np.ndarray
    given: np.ndarray
    suggested: np.ndarray
    self_confidence: np.ndarray
    confusion: np.ndarray
    accuracy: float = float("nan")
    chance: float = float("nan")
    warning: str | None = None

    @property
    def confidence(self):
        """ndarray of shape (Q,): one minus the out-of-fold probability of the given label."""
        return 1.0 - self.self_confidence

    @property
    def skill(self):
        """Out-of-fold accuracy rescaled: 0 is chance, 1 is perfect (NaN when undefined)."""
        return skill(self.accuracy, self.chance)


def skill(accuracy, chance):
    """``(accuracy - chance) / (1 - chance)``; NaN when chance is 1 or unknown."""
    if not np.isfinite(chance) or chance >= 1:
        return float("nan")
    return float((accuracy - chance) / (1 - chance))


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
    present, counts = np.unique(labels, return_counts=True)
    accuracy = float(np.mean(suggested_all == labels)) if len(labels) else float("nan")
    chance = float(counts.max() / len(labels)) if len(labels) else float("nan")
    warning = _weak_evidence(len(labels), present, counts, skill(accuracy, chance), config)
    if warning is not None or len(present) < 2:  # cleanlab needs at least two labels in use
        return LabelIssues(empty, empty, empty, np.zeros(0), confusion, accuracy, chance, warning)
    # cleanlab needs every column to be some item's label.
    proba = oof_proba[:, present]
    proba = proba / proba.sum(axis=1, keepdims=True).clip(1e-12)
    compact = np.searchsorted(present, labels)
    # n_jobs=1: no forked process pool inside the server (one hung its shutdown), and on
    # these sizes the pool costs more than it gains.
    proposed = find_label_issues(compact, proba, filter_by=config.filter_by, n_jobs=1)
    self_confidence = oof_proba[np.arange(len(labels)), labels]
    strong = proposed & (self_confidence <= config.max_given_proba) & (suggested_all != labels)
    positions = np.flatnonzero(strong)
    positions = positions[np.argsort(self_confidence[positions], kind="stable")]
    return LabelIssues(
        positions=positions,
        given=labels[positions],
        suggested=suggested_all[positions],
        self_confidence=self_confidence[positions],
        confusion=confusion,
        accuracy=accuracy,
        chance=chance,
    )


def _weak_evidence(n_labels, present, counts, model_skill, config):
    """Why flags would mean little, or None."""
    if n_labels < config.min_labels:
        return f"{n_labels} labels; label issues are looked for from {config.min_labels} labels"
    if len(present) < 2:
        return "one class labeled; label issues need two classes"
    if counts.min() < config.min_per_class:
        return (
            f"a class has only {counts.min()} labels; label issues are looked for from "
            f"{config.min_per_class} labels in every class, as fewer give mostly false alarms"
        )
    if not model_skill >= config.min_skill:
        return (
            f"the model is too weak for its flags to mean much (out-of-fold skill {model_skill:.2f}, "
            f"0 is chance; flags need {config.min_skill:.2f}): more labels or a better backbone"
        )
    return None


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
