"""Honest accuracy from audit asks.

A small share of asks is drawn uniformly at random from the unlabeled pool, and the
probe's prediction is recorded at ask time. The user's answer to such an ask is a
fair draw of "is the current model right on the pool", unlike answers to the
strategy's asks, which are chosen for being hard. Accuracy is estimated per model
version (the learning curve) and a stop hint says when it has stopped improving.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm


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


def stop_hint(n_labels, correct, *, rule=StopRule()):
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

    Returns
    -------
    StopHint
    """
    n_labels, correct = np.asarray(n_labels, float), np.asarray(correct, bool)
    w = rule.window
    if len(correct) < 2 * w:
        low, high = wilson_interval(correct.sum(), len(correct), rule.confidence)
        return StopHint(
            False,
            float("nan"),
            float(correct.mean()) if len(correct) else float("nan"),
            float(low),
            float(high),
            f"needs {2 * w} audit answers, has {len(correct)}",
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
