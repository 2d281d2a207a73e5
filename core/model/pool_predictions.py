"""One probe's predictions over the whole pool, computed once per model version.

Selection ranks every unlabeled item by uncertainty, which only changes when a new
probe serves; between retrains only the similarity part of a score moves. So the pool
is predicted once per probe (the "full refresh after a retrain") and each later
selection reads these arrays.

A softmax probe is predicted in float32 from the logits (no float64 probabilities):
each score is written so that nothing cancels (``1 - p_top`` is the sum of the other
classes' share), so confident items keep distinct, non-zero scores.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
from threadpoolctl import ThreadpoolController

from core.selection.scorers import UNCERTAINTY, multilabel_uncertainty

_BLAS = ThreadpoolController()
# Rows predicted at once: the (K, rows) float32 temporaries of a block stay in the CPU cache.
_BLOCK_ROWS = 1 << 13


class PoolPredictions:
    """Lazily computed, cached per-item predictions of one fitted probe over a pool.

    Parameters
    ----------
    embeddings : ndarray of shape (N, D)
    probe : fitted :class:`core.model.probe.LinearProbe`
    n_threads : int or None
        Threads that share the pool's rows (one BLAS thread each); None: one per CPU core.

    Attributes
    ----------
    probe : the probe they are of
    """

    def __init__(self, embeddings, probe, *, n_threads=None):
        self.embeddings, self.probe = embeddings, probe
        self.n_threads = max(1, n_threads or os.cpu_count() or 1)
        self._fitted = self._fitted_state(probe)
        self._uncertainty = {}
        self._predicted_column = None

    def is_current(self, probe):
        """Whether these are ``probe``'s predictions as it is now (a refit in place makes new arrays)."""
        now = self._fitted_state(probe)
        return probe is self.probe and all(a is b for a, b in zip(now[:3], self._fitted)) and now[3] == self._fitted[3]

    @staticmethod
    def _fitted_state(probe):
        return probe.coef_, probe.intercept_, probe.classes_, float(probe.temperature_)

    def uncertainty(self, method):
        """:data:`core.selection.scorers.UNCERTAINTY` ``method`` of every item (multi-label: of its
        least certain class), ndarray of shape (N,), float64; the predicted class column
        is found in the same pass."""
        if method not in self._uncertainty:
            values = np.empty(len(self.embeddings))
            predicted = np.empty(len(self.embeddings), np.int32)
            n_classes = len(self.probe.classes_)
            if self.probe.multi_label or n_classes < 2:
                predict = partial(self._predict_from_proba, method, values, predicted)
            else:
                # Temperature folded into the weights: logits / T in one product, float32 throughout.
                coef_t = np.ascontiguousarray(self.probe.coef_.T / np.float32(self.probe.temperature_), np.float32)
                intercept = (self.probe.intercept_ / np.float32(self.probe.temperature_)).astype(np.float32)
                predict = partial(
                    _predict_single_label,
                    self.embeddings,
                    coef_t,
                    intercept,
                    UNCERTAINTY_FROM_LOGITS[method],
                    values,
                    predicted,
                )
            spans = np.linspace(0, len(values), self.n_threads + 1).astype(int).tolist()
            with _BLAS.limit(limits=1, user_api="blas"), ThreadPoolExecutor(self.n_threads) as threads:
                for done in [threads.submit(predict, a, b) for a, b in zip(spans[:-1], spans[1:])]:
                    done.result()
            self._uncertainty[method], self._predicted_column = values, predicted
        return self._uncertainty[method]

    def _predict_from_proba(self, method, values, predicted, start, stop):
        """Multi-label probes, and probes with fewer than 2 classes, through ``predict_proba``."""
        for b0 in range(start, stop, _BLOCK_ROWS):
            b1 = min(b0 + _BLOCK_ROWS, stop)
            proba = self.probe.predict_proba(self.embeddings[b0:b1])
            if proba.shape[1] == 0:
                values[b0:b1], predicted[b0:b1] = 0.0, -1
                continue
            values[b0:b1] = (
                multilabel_uncertainty(proba, method) if self.probe.multi_label else UNCERTAINTY[method](proba)
            )
            predicted[b0:b1] = proba.argmax(axis=1)

    def predicted_column(self):
        """Column of ``probe.classes_`` with the highest probability, per item (N,); -1 without classes."""
        if self._predicted_column is None:
            self.uncertainty("margin")
        return self._predicted_column


def _predict_single_label(embeddings, coef_t, intercept, uncertainty, values, predicted, start, stop):
    """Uncertainty and predicted column of rows ``start:stop`` of a softmax probe with K >= 2
    classes, block by block in class-major (K, rows) float32 buffers reused across blocks:
    each step below is then a vectorised pass over contiguous rows of length ``rows``."""
    n_classes = len(intercept)
    logits = np.empty((n_classes, _BLOCK_ROWS), np.float32)
    scratch = np.empty((n_classes, _BLOCK_ROWS), np.float32)
    top = np.empty(_BLOCK_ROWS, np.float32)
    best = np.empty(_BLOCK_ROWS, np.int32)
    for b0 in range(start, stop, _BLOCK_ROWS):
        n = min(_BLOCK_ROWS, stop - b0)
        z, e, zmax, column = logits[:, :n], scratch[:, :n], top[:n], best[:n]
        block = embeddings[b0 : b0 + n]
        # float16 storage: a float32 copy of the block, so that the product runs in BLAS.
        np.matmul(coef_t, (block if block.dtype == np.float32 else block.astype(np.float32)).T, out=z)
        z += intercept[:, None]
        # Argmax over the K rows: K vectorised comparisons (np.argmax along axis 0 is slow).
        np.copyto(zmax, z[0])
        column[:] = 0
        for k in range(1, n_classes):
            higher = z[k] > zmax
            column[higher] = k
            np.maximum(zmax, z[k], out=zmax)
        z -= zmax  # shifted logits d <= 0, 0 at the top class
        np.maximum(z, np.finfo(np.float32).min, out=z)  # a class without labels (-inf): exp 0, 0 * d = 0
        np.exp(z, out=e)
        e[column, np.arange(n)] = 0.0  # the top class's exp (exactly 1) apart: no cancellation in 1 - p_top
        values[b0 : b0 + n] = uncertainty(z, e)
        predicted[b0 : b0 + n] = column


def _margin_from_logits(shifted, others):
    """1 - (p_top - p_second) = (sum of the others + the second) / S, S = 1 + sum of the others."""
    rest = others.sum(axis=0)
    return (rest + others.max(axis=0)) / (1.0 + rest)


def _least_confidence_from_logits(shifted, others):
    """(1 - p_top) K / (K - 1) = sum of the others / S, scaled."""
    rest = others.sum(axis=0)
    k = len(others)
    return rest / (1.0 + rest) * (k / (k - 1))


def _entropy_from_logits(shifted, others):
    """(log S - sum_j p_j d_j) / log K, d the shifted logits (the top class contributes 0)."""
    rest = others.sum(axis=0)
    total = 1.0 + rest
    others *= shifted
    return (np.log(total) - others.sum(axis=0) / total) / np.float32(np.log(len(others)))


# The :data:`core.selection.scorers.UNCERTAINTY` scores from shifted logits ``d = z - max z`` (K, rows) and
# ``exp(d)`` with the top class zeroed: float32 without the cancellation of 1 - p_top.
UNCERTAINTY_FROM_LOGITS = {
    "margin": _margin_from_logits,
    "entropy": _entropy_from_logits,
    "least_confidence": _least_confidence_from_logits,
}
