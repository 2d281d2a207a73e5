import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from core.model.loop import LoopConfig, RetrainLoop
from core.model.probe import LinearProbe
from core.model.retrain_worker import ProbeTrainer, WorkerDied, train_probe
from tests.engine_data import clusters
from tests.probe_fits import ProbeFit

pytestmark = pytest.mark.slow

WAIT = 30  # seconds; only reached when something is broken


def train_slowly_once(X, y, previous, classes, params):
    """Runs in the worker: the first fit with more than 30 labels announces itself in the
    file $SLOW_FIT_MARKER and then hangs, to be killed; every other fit is the real one."""
    marker = Path(os.environ["SLOW_FIT_MARKER"])
    if len(y) > 30 and not marker.exists():
        # Written aside and renamed: the test reads the pid as soon as the marker exists, and
        # write_text would let it see the file created but still empty.
        partial = marker.with_name(marker.name + ".partial")
        partial.write_text(str(os.getpid()))
        partial.replace(marker)
        time.sleep(600)
    yield from train_probe(X, y, previous, classes, params)


def train_failing(X, y, previous, classes, params):
    raise ValueError(f"cannot fit {len(y)} labels")
    yield  # a generator, like train_probe


class Recorder:
    def __init__(self):
        self.versions, self.errors = [], []

    def on_model(self, version, model, metrics):
        self.versions.append(version)

    def on_error(self, error):
        self.errors.append(error)


def wait_for(condition, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_kill_9_of_the_worker_mid_retrain_keeps_the_previous_model_and_the_next_retrain_succeeds(tmp_path, monkeypatch):
    marker = tmp_path / "slow-fit-started"
    monkeypatch.setenv("SLOW_FIT_MARKER", str(marker))
    X, y = clusters([30, 30, 30], seed=1)
    recorder = Recorder()
    fit = ProbeFit(X, train=train_slowly_once)
    loop = RetrainLoop(fit=fit, config=LoopConfig(retrain_every=20), callbacks=[recorder])
    try:
        first = np.arange(0, 90, 5)  # 18 labels, 3 classes
        loop.add_labels(first, y[first])
        loop.request_retrain()
        assert loop.wait_idle(WAIT)
        version, served, _ = loop.current
        assert version == 1 and isinstance(served, LinearProbe)

        more = np.arange(1, 90, 4)  # the next retrain has 41 labels: the slow one
        loop.add_labels(more, y[more])
        wait_for(marker.exists)
        pid = int(marker.read_text())
        assert pid == fit.trainer.pid and pid != os.getpid()
        os.kill(pid, signal.SIGKILL)
        assert loop.wait_idle(WAIT)
        assert loop.current[0] == 1 and loop.current[1] is served  # the previous model keeps serving
        assert len(recorder.errors) == 1 and isinstance(recorder.errors[0], WorkerDied)
        assert "signal 9" in str(recorder.errors[0])
        np.testing.assert_array_equal(served.predict(X[:5]), loop.current[1].predict(X[:5]))

        loop.request_retrain()  # a fresh worker, and the retrain succeeds
        assert loop.wait_idle(WAIT)
        version, probe, metrics = loop.current
        assert version == 2 and recorder.versions == [1, 2]
        assert metrics["n_labels"] == len(np.union1d(first, more))
        assert fit.trainer.pid not in (None, pid)
        assert np.mean(probe.predict(X) == y) > 0.9
    finally:
        loop.close(WAIT)
    assert fit.trainer.pid is None  # closing the loop stops the worker


def test_an_error_in_the_worker_reaches_the_caller_and_the_worker_survives():
    X, y = clusters([20, 20], seed=2)
    trainer = ProbeTrainer(train=train_failing)
    try:
        with pytest.raises(ValueError, match="cannot fit 40 labels"):
            trainer.fit(X, y, None)
        pid = trainer.pid
        assert pid is not None
        trainer.train = train_probe  # the module-level function is what travels to the worker
        probe, metrics = trainer.fit(X, y, None)
        assert trainer.pid == pid and list(probe.classes_) == [0, 1] and metrics["n_classes"] == 2
    finally:
        trainer.close()


def test_calibration_follows_the_served_fit_and_calibrates_the_next():
    X, y = clusters([40, 40], seed=3, spread=1.5)
    trainer = ProbeTrainer()
    try:
        first, metrics = trainer.fit(X[::2], y[::2], None)
        assert first.temperature_ == 1.0 and "oof_accuracy" not in metrics  # served before calibration
        second, metrics = trainer.fit(X, y, first)
        reference = LinearProbe().fit(X[::2], y[::2])  # the same labels, calibrated in one go
        assert metrics["oof_labels"] == 40
        assert metrics["temperature"] == second.temperature_ == pytest.approx(reference.temperature_, rel=1e-3)
        oof_accuracy = np.mean(reference.classes_[reference.oof_proba_.argmax(axis=1)] == y[::2])
        assert metrics["oof_accuracy"] == pytest.approx(oof_accuracy)
        assert first.temperature_ == 1.0  # the served probe was not modified
    finally:
        trainer.close()


def test_multi_label_probes_train_in_the_worker_and_grow_columns():
    X, y = clusters([30, 30, 30], seed=4)
    Y = np.stack([y == 0, y != 2], axis=1).astype(np.float32)  # columns 10 and 20
    trainer = ProbeTrainer(multi_label=True)
    try:
        first, _ = trainer.fit(X, Y, None, classes=[10, 20])
        assert first.multi_label and list(first.classes_) == [10, 20]
        wider = np.c_[Y, (y == 1).astype(np.float32)]
        probe, metrics = trainer.fit(X, wider, first, classes=[10, 20, 30])
        assert list(probe.classes_) == [10, 20, 30] and metrics["n_classes"] == 3
        np.testing.assert_array_equal(probe.predict(X), wider.astype(np.int8))
    finally:
        trainer.close()
