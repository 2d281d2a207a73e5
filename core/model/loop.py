"""Background retraining: labeling never waits for a fit.

Labels are enqueued; a worker thread refits after every ``retrain_every`` changed labels
(or on request) on a snapshot of them, then swaps the new model in with a single
reference assignment under a lock. A fit that raises leaves the previous version
serving. The service layer runs the fit itself in a child process
(:class:`core.model.retrain_worker.ProbeTrainer`), so that even a killed fit only costs that
retrain, and stores each version through ``on_model``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopConfig:
    retrain_every: int = 10  # new labels that trigger a retrain


class RetrainLoop:
    """Retrains a model in a background thread as labels arrive.

    Parameters
    ----------
    fit : callable
        ``fit(indices, labels, previous_model) -> (model, metrics)``; ``indices`` and
        ``labels`` are arrays of every current label (the latest label per item; an
        object array when labels are tuples, e.g. multi-label class sets),
        ``previous_model`` is the serving model or None. It must return a new object,
        not modify ``previous_model``, which callers may be predicting with. Its
        ``close()``, if it has one, is called by :meth:`close`.
    config : LoopConfig
    callbacks : sequence
        Objects with optional ``on_model(version, model, metrics)`` (a new version is
        serving; metrics gain ``n_labels`` and ``fit_seconds``) and
        ``on_error(error)`` (a retrain or an ``on_model`` callback raised).
    model, version : initial model (e.g. loaded from storage) and its version number.
    trained_on : (indices, labels) or None
        The labels ``model`` was trained on, e.g. a stored model that is current: the loop
        starts with them and they do not count as new, so no retrain is due until labels
        change. None starts without labels (add them with :meth:`add_labels`).

    Attributes
    ----------
    current : tuple (version, model, metrics)
        The serving model; version 0 and model None before the first fit.
    """

    def __init__(self, *, fit, config=LoopConfig(), callbacks=(), model=None, version=0, trained_on=None):
        self.fit = fit
        self.config = config
        self.callbacks = callbacks
        self.current = (version, model, {})
        self._labels = {}
        if trained_on is not None:
            self._labels.update(zip(*self._checked(*trained_on)))
        self._new = 0
        self._requested = False
        self._busy = False
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="retrain-loop", daemon=True)
        self._thread.start()

    def add_labels(self, indices, labels):
        """Enqueue labels (a later label for the same item replaces the earlier); returns at once.

        ``labels``: one per index; a label may be a tuple (e.g. a multi-label class set).
        """
        indices, labels = self._checked(indices, labels)
        with self._cond:
            self._labels.update(zip(indices, labels))
            self._new += len(indices)
            self._cond.notify_all()

    @staticmethod
    def _checked(indices, labels):
        """Indices and labels as lists of equal length, tuple labels hashable."""
        indices = np.asarray(indices).ravel()
        if len(indices) != len(labels):
            raise ValueError(f"got {len(indices)} indices but {len(labels)} labels.")
        labels = [tuple(v) if isinstance(v, (tuple, list)) else v for v in np.asarray(labels, object).tolist()]
        return indices.tolist(), labels

    def remove_labels(self, indices):
        """Forget the labels of these items (an undo, or a label cleared); counts as a change."""
        indices = np.asarray(indices).ravel().tolist()
        with self._cond:
            for index in indices:
                self._labels.pop(index, None)
            self._new += len(indices)
            self._cond.notify_all()

    def request_retrain(self):
        """Retrain as soon as the worker is free, whatever the count of new labels."""
        with self._cond:
            self._requested = True
            self._cond.notify_all()

    def wait_idle(self, timeout=None):
        """Block until no retrain is running or due; True unless ``timeout`` ran out."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy and not self._due(), timeout)

    def close(self, timeout=None):
        """Stop the worker after the retrain in progress, if any, and close the fit."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if hasattr(self.fit, "close"):
            self.fit.close()

    def _due(self):
        # With no labels left, retrain only to forget removed ones a served model learned.
        has_data = bool(self._labels) or self.current[1] is not None
        return has_data and (self._requested or self._new >= self.config.retrain_every)

    def _snapshot(self):
        indices = np.fromiter(self._labels.keys(), np.int64, len(self._labels))
        values = list(self._labels.values())
        if any(isinstance(v, tuple) for v in values):
            labels = np.empty(len(values), object)
            for i, value in enumerate(values):
                labels[i] = value
        else:
            labels = np.array(values)
        return indices, labels

    def _run(self):
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closing or self._due())
                if self._closing:
                    return
                indices, labels = self._snapshot()
                self._new, self._requested, self._busy = 0, False, True
                version, previous, _ = self.current
            try:
                self._retrain(indices, labels, version, previous)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _retrain(self, indices, labels, version, previous):
        start = time.perf_counter()
        try:
            model, metrics = self.fit(indices, labels, previous)
        except Exception as error:  # the previous version keeps serving
            self._report(error)
            return
        metrics = dict(metrics, n_labels=len(indices), fit_seconds=time.perf_counter() - start)
        with self._cond:
            self.current = (version + 1, model, metrics)  # the atomic swap
        for callback in self.callbacks:
            if hasattr(callback, "on_model"):
                try:
                    callback.on_model(version + 1, model, metrics)
                except Exception as error:
                    self._report(error)

    def _report(self, error):
        reported = False
        for callback in self.callbacks:
            if hasattr(callback, "on_error"):
                try:
                    callback.on_error(error)
                    reported = True
                except Exception:
                    log.exception("on_error callback failed")
        if not reported:
            log.error("retrain failed and no callback took the error", exc_info=error)
