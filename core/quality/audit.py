"""Honest accuracy from audit asks.

A small share of asks is drawn uniformly at random from the unlabeled pool, and the
probe's prediction is recorded at ask time. The user's answer to such an ask is a
fair draw of "is the current model right on the pool", unlike answers to the
strategy's asks, which are chosen for being hard. Accuracy is estimated per model
version (the learning curve) and a stop hint says when it has stopped improving.

Audit answers come slowly (one ask in twenty), so early on :func:`accuracy_estimate` leans on
the probe's out-of-fold accuracy over the labeled images, which exists from the first fit,
and lets the audit answers take over as they accumulate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import beta, norm


@dataclass(frozen=True)
class StopRule:
    """When the stop hint fires; see :func:`stop_hint`."""

    window: int = 40  # audits per window
    min_gain: float = 0.01  # accuracy gain per 100 labels below which the curve is flat
    confidence: float = 0.9


@dataclass(frozen=True)
class LearningCurve:
    """Audit accuracy per model version; arrays of shape (V,), in version order."""

    version: np.ndarray
    n_labels: np.ndarray  # labels the version was trained on
    n_audits: np.ndarray
    accuracy: np.ndarray
    low: np.ndarray  # Wilson interval at the curve's confidence
    high: np.ndarray


@dataclass(frozen=True)
class StopHint:
    stop: bool
    gain_per_100: float  # accuracy gain per 100 labels between the last two windows; NaN if too few audits
    accuracy: float  # audit accuracy of the last window
    low: float  # its Wilson interval
    high: float
    reason: str
    more_labels: int | None = None  # labels still to give before the audit windows are full (None: they are)


@dataclass(frozen=True)
class AccuracyEstimate:
    """The serving model's accuracy on the pool, with its interval and what it rests on.

    ``audit_right`` of ``audit_n`` audit answers were right; ``oof_accuracy`` (None before an
    out-of-fold fit) was measured on ``oof_n`` labeled images and counts as ``oof_weight`` audit
    answers.
    """

    accuracy: float
    low: float
    high: float
    audit_right: int
    audit_n: int
    oof_accuracy: float | None
    oof_n: int
    oof_weight: float

    @property
    def basis(self) -> str:
        """Which evidence the estimate rests on, in words."""
        parts = []
        if self.audit_n:
            parts.append(f"{self.audit_right} of {self.audit_n} audit answers right")
        if self.oof_accuracy is not None and self.oof_weight > 0:
            parts.append(
                f"out-of-fold accuracy {self.oof_accuracy:.0%} on {self.oof_n} labeled images "
                f"(counted as {self.oof_weight:.0f} audit answers: labeled images are chosen for being hard)"
            )
        return "; ".join(parts) or "no evidence yet"


def accuracy_estimate(
    audit_correct, oof_accuracy: float | None, oof_n: int, *, max_oof_weight: float = 20, confidence: float = 0.9
) -> AccuracyEstimate:
    """Accuracy on the pool from audit answers and the out-of-fold accuracy together.

    The out-of-fold accuracy is a prior worth ``min(oof_n, max_oof_weight)`` audit answers: a
    Beta(1 + w p, 1 + w (1 - p)) that the audit answers update. It is capped because the labeled
    images are not a random draw (the strategy asks about hard ones), so it is informative early
    but biased; fair audit answers outweigh it once a few dozen have come in.

    Parameters
    ----------
    audit_correct : array-like of shape (A,), bool
        Whether each answered audit ask found the model right.
    oof_accuracy : float or None
    oof_n : int
        Labels the out-of-fold accuracy was measured on.
    max_oof_weight : float
    confidence : float

    Returns
    -------
    AccuracyEstimate
    """
    correct = np.asarray(audit_correct, bool)
    right, n = int(correct.sum()), len(correct)
    weight = float(min(oof_n, max_oof_weight)) if oof_accuracy is not None else 0.0
    p = oof_accuracy if oof_accuracy is not None else 0.5
    a, b = 1 + right + weight * p, 1 + (n - right) + weight * (1 - p)
    low, high = beta.ppf([(1 - confidence) / 2, (1 + confidence) / 2], a, b)
    return AccuracyEstimate(float(a / (a + b)), float(low), float(high), right, n, oof_accuracy, oof_n, weight)


def draw_audits(candidates, n, share, rng):
    """How many of ``n`` asks are audits (each with probability ``share``), drawn
    uniformly from ``candidates`` (the unlabeled pool rows)."""
    count = int(rng.binomial(n, share)) if n else 0
    return rng.choice(candidates, min(count, len(candidates)), replace=False)


def wilson_interval(successes, trials, confidence=0.9):
    """Wilson score interval for a binomial proportion (sound at small counts and at 0 or 1).

    Returns (low, high) arrays shaped like the inputs; (0, 1) where ``trials`` is 0.
    """
    successes, trials = np.asarray(successes, float), np.asarray(trials, float)
    z = norm.ppf(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = successes / trials
        centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
        half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    # At p = 0 or 1 the interval ends exactly there; rounding would leave it a hair short.
    low = np.where((trials == 0) | (p == 0), 0.0, centre - half)
    high = np.where((trials == 0) | (p == 1), 1.0, centre + half)
    return low, high


def learning_curve(version, n_labels, correct, *, confidence=0.9):
    """Audit accuracy of each model version that answered audit asks.

    Parameters
    ----------
    version : array-like of shape (A,)
        Model version that made each audit prediction.
    n_labels : array-like of shape (A,)
        Labels that version was trained on.
    correct : array-like of shape (A,), bool
    confidence : float

    Returns
    -------
    LearningCurve
    """
    version, n_labels, correct = (np.asarray(a) for a in (version, n_labels, correct))
    versions, first, inverse = np.unique(version, return_index=True, return_inverse=True)
    audits = np.bincount(inverse, minlength=len(versions))
    right = np.bincount(inverse, weights=correct.astype(float), minlength=len(versions))
    low, high = wilson_interval(right, audits, confidence)
    return LearningCurve(
        version=versions,
        n_labels=n_labels[first],
        n_audits=audits,
        accuracy=right / np.maximum(audits, 1),
        low=low,
        high=high,
    )


def stop_hint(n_labels, correct, *, rule=StopRule(), audit_share: float | None = None):
    """Whether labeling more has stopped paying off, by the audit asks so far.

    Rule: take the last ``2 * window`` audits in ask order and split them into two
    windows. The gain is (accuracy of the later window - of the earlier one) divided
    by the labels between the windows' mean label counts, per 100 labels. The hint
    fires when that gain is below ``min_gain``. With 40 audits a window, accuracy is
    known to about +-0.1 (90%), so the hint is a prompt to look at the curve, not a
    verdict; the returned interval says how sure the last window is.

    Parameters
    ----------
    n_labels : array-like of shape (A,)
        Labels the predicting model had been trained on, per audit, in ask order.
    correct : array-like of shape (A,), bool
    rule : StopRule
    audit_share : float, optional
        Share of asks that are audits; with it, a hint still waiting for audits says about how
        many more labels that takes.

    Returns
    -------
    StopHint
    """
    n_labels, correct = np.asarray(n_labels, float), np.asarray(correct, bool)
    w = rule.window
    if len(correct) < 2 * w:
        low, high = wilson_interval(correct.sum(), len(correct), rule.confidence)
        missing = 2 * w - len(correct)
        more = int(np.ceil(missing / audit_share)) if audit_share else None
        why = f"needs {2 * w} audit answers to compare two windows of {w}, has {len(correct)}" + (
            f": about {more:,} more labels at the {audit_share:.0%} audit share" if more is not None else ""
        )
        return StopHint(
            False,
            float("nan"),
            float(correct.mean()) if len(correct) else float("nan"),
            float(low),
            float(high),
            why,
            more,
        )
    earlier, later = slice(-2 * w, -w), slice(-w, None)
    span = n_labels[later].mean() - n_labels[earlier].mean()
    accuracy = correct[later].mean()
    low, high = wilson_interval(correct[later].sum(), w, rule.confidence)
    if span <= 0:
        return StopHint(
            False,
            float("nan"),
            float(accuracy),
            float(low),
            float(high),
            "no new labels between the last two audit windows",
        )
    gain = 100 * (accuracy - correct[earlier].mean()) / span
    stop = bool(gain < rule.min_gain)
    verdict = "flat" if stop else "still improving"
    return StopHint(
        stop,
        float(gain),
        float(accuracy),
        float(low),
        float(high),
        f"{verdict}: {gain:+.3f} accuracy per 100 labels over the last {2 * w} audits",
    )
