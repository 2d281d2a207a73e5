"""Probe fits in a child process, so that a crash or a kill -9 of the fit cannot take
the serving model (or the app) with it.

The child is a fresh Python (``python -c``, not fork: the parent runs threads) that
imports only numpy-level code, talks over a socket pair, and exits when the parent's
end closes. One child serves fit after fit; when it dies, the fit in flight raises
:class:`WorkerDied` and the next fit starts a new child.

Each fit has two phases. The full fit (no out-of-fold fits) comes back first and is
served at once; the out-of-fold fits and the temperature follow in the child while the
new model serves, and calibrate the *next* fit (metrics ``oof_accuracy`` and
``oof_labels`` say which labels they were measured on). The served model never waits
for them.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from multiprocessing.connection import Connection

import numpy as np

from core.model.probe import LinearProbe

log = logging.getLogger(__name__)


class WorkerDied(RuntimeError):
    """The worker process ended in the middle of a fit (killed, crashed, out of memory)."""


def train_probe(X, y, previous, classes, params):
    """The child's side of :meth:`ProbeTrainer.fit`: yields the served model, then its calibration.

    Parameters
    ----------
    X : ndarray of shape (n, D), float32
    y : ndarray of shape (n,), or (n, K) indicators (multi-label)
    previous : dict of arrays (:meth:`LinearProbe.to_arrays`) or None
        The serving probe, to warm-start from.
    classes : array-like or None
        As for :meth:`LinearProbe.fit`.
    params : dict
        :class:`LinearProbe` parameters.

    Yields
    ------
    (dict of arrays, dict)
        The new probe's arrays and its metrics ``n_classes``, ``n_iter``.
    dict
        ``temperature`` and, single-label, ``oof_accuracy``: the out-of-fold fits.
    """
    probe = LinearProbe.from_arrays(previous, **params) if previous is not None else LinearProbe(**params)
    probe.fit(X, y, classes=classes, out_of_fold=False)
    yield probe.to_arrays(), dict(n_classes=len(probe.classes_), n_iter=probe.n_iter_)
    if probe.n_folds and len(y):
        probe.fit_out_of_fold(X, y, classes=classes)
        calibration = dict(temperature=probe.temperature_, oof_labels=len(y))
        if not probe.multi_label:
            calibration["oof_accuracy"] = float(np.mean(probe.classes_[probe.oof_proba_.argmax(axis=1)] == y))
        yield calibration


class ProbeTrainer:
    """Fits :class:`LinearProbe` versions in a worker process; see the module docstring.

    Not thread-safe: one fit at a time (the retrain loop's thread).

    Parameters
    ----------
    train : callable
        A module-level generator function with the signature of :func:`train_probe`
        (tests inject slow or failing ones); it runs in the child.
    **probe_params
        :class:`LinearProbe` parameters.

    Attributes
    ----------
    calibration : dict
        The latest out-of-fold results; applied to the next fit.
    """

    def __init__(self, *, train=train_probe, **probe_params):
        self.train = train
        self.probe_params = probe_params
        self.calibration = {}
        self._child = None
        self._conn = None
        self._followups = False  # the child is still sending the previous fit's calibration

    @property
    def pid(self):
        """Process id of the worker, or None when none is running."""
        return self._child.pid if self._child is not None and self._child.poll() is None else None

    def fit(self, X, y, previous, *, classes=None):
        """Fit a new probe on ``X``, ``y``, warm-started from ``previous`` (not modified).

        Returns
        -------
        (LinearProbe, dict)
            The probe, calibrated by the latest out-of-fold fits, and its metrics.

        Raises
        ------
        WorkerDied
            The worker ended before the model came back; the next call starts a new one.
        """
        self.collect_calibration()
        if self.pid is None:
            self._start()
        arrays = None
        if previous is not None:
            arrays = dict(previous.to_arrays())
            if "temperature" in self.calibration:
                arrays["temperature"] = np.asarray(self.calibration["temperature"], np.float64)
        self._send(
            (self.train, (np.ascontiguousarray(X, np.float32), np.asarray(y), arrays, classes, self.probe_params))
        )
        arrays, metrics = self._receive()
        self._followups = True
        probe = LinearProbe.from_arrays(arrays, **self.probe_params)
        return probe, {**metrics, **self.calibration, "temperature": probe.temperature_}

    def close(self, timeout=2):
        """Stop the worker: an idle one exits at end-of-file, a busy one is killed after
        ``timeout`` seconds (what it was fitting is of no use any more). Safe to call again."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._child is not None:
            try:
                self._child.wait(timeout)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
            self._child = None

    # ----- internals -------------------------------------------------------------------

    def _start(self):
        self.close()
        parent, child = socket.socketpair()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        code = "import sys; from core.model.retrain_worker import serve; serve(int(sys.argv[1]))"
        # A new session: a Ctrl-C meant for the app does not kill a fit; the child ends
        # when the parent does, as its socket closes.
        self._child = subprocess.Popen(
            [sys.executable, "-c", code, str(child.fileno())],
            pass_fds=(child.fileno(),),
            env=env,
            start_new_session=True,
        )
        child.close()
        self._conn = Connection(parent.detach())
        self._followups = False

    def _send(self, message):
        try:
            self._conn.send(message)
        except OSError as error:
            raise self._died() from error

    def _receive(self):
        """The next result of the fit in flight; raises the child's error or WorkerDied."""
        try:
            kind, value = self._conn.recv()
        except (EOFError, OSError) as error:
            raise self._died() from error
        if kind == "error":
            self._followups = False
            raise value
        if kind == "done":
            return None
        return value

    def collect_calibration(self):
        """Wait for the previous fit's out-of-fold calibration, if the worker is still on it
        (the next fit does this first); returns :attr:`calibration`."""
        if not self._followups:
            return self.calibration
        self._followups = False
        try:
            while (value := self._receive()) is not None:
                self.calibration = value
        except WorkerDied as error:  # the model was served already; only its calibration is lost
            log.warning("%s", error)
        except Exception:
            log.exception("out-of-fold calibration failed; the previous calibration stays")
        return self.calibration

    def _died(self):
        child, self._conn = self._child, None
        self._child = None
        code = child.wait() if child is not None else None
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return WorkerDied(
            f"the retrain worker (pid {child.pid if child else '?'}) died during a fit ({how}); "
            "the previous model keeps serving"
        )


def serve(fd):
    """The child's loop: run each fit and send back what it yields, until the socket closes."""
    conn = Connection(fd)
    try:
        while True:
            train, args = conn.recv()
            try:
                for value in train(*args):
                    conn.send(("result", value))
                conn.send(("done", None))
            except ConnectionError:
                raise
            except Exception as error:  # noqa: BLE001 - sent to the parent, which reports it
                try:
                    conn.send(("error", error))
                except ConnectionError:
                    raise
                except Exception:  # an error that does not pickle
                    conn.send(("error", RuntimeError(f"{type(error).__name__}: {error}")))
    except (EOFError, ConnectionError):  # the parent closed its end or ended: nothing left to do
        return
