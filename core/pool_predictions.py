"""One probe's predictions over the whole pool, computed once per model version.

Selection ranks every unlabeled item by uncertainty, which only changes when a new
probe serves; between retrains only the similarity part of a score moves. So the pool
is predicted once per probe (the "full refresh after a retrain") and each later
selection reads these arrays.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import ThreadpoolController

from core.scorers import UNCERTAINTY, multilabel_uncertainty

_BLAS = ThreadpoolController()
_BLOCK_ROWS = 1 << 16  # rows predicted at once: bounds the float64 probabilities in memory


class PoolPredictions:
    """Lazily computed, cached per-item predictions of one fitted probe over a pool.

    Parameters
    ----------
    embeddings : ndarray of shape (N, D)
    probe : fitted :class:`core.probe.LinearProbe`
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
        """:data:`core.scorers.UNCERTAINTY` ``method`` of every item (multi-label: of its
        least certain class), ndarray of shape (N,), float64; the predicted class column
        is found in the same pass."""
        if method not in self._uncertainty:
            values = np.empty(len(self.embeddings))
            predicted = np.empty(len(self.embeddings), np.int32)

            def predict(start, stop):
                for b0 in range(start, stop, _BLOCK_ROWS):
                    b1 = min(b0 + _BLOCK_ROWS, stop)
                    proba = self.probe.predict_proba(self.embeddings[b0:b1])
                    if proba.shape[1] == 0:
                        values[b0:b1], predicted[b0:b1] = 0.0, -1
                        continue
                    values[b0:b1] = (multilabel_uncertainty(proba, method) if self.probe.multi_label
                                     else UNCERTAINTY[method](proba))
                    predicted[b0:b1] = proba.argmax(axis=1)

            spans = np.linspace(0, len(values), self.n_threads + 1).astype(int).tolist()
            with _BLAS.limit(limits=1, user_api="blas"), ThreadPoolExecutor(self.n_threads) as threads:
                for done in [threads.submit(predict, a, b) for a, b in zip(spans[:-1], spans[1:])]:
                    done.result()
            self._uncertainty[method], self._predicted_column = values, predicted
        return self._uncertainty[method]

    def predicted_column(self):
        """Column of ``probe.classes_`` with the highest probability, per item (N,); -1 without classes."""
        if self._predicted_column is None:
            self.uncertainty("margin")
        return self._predicted_column
