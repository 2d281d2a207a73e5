import threading

import numpy as np
import pytest

from core.model.loop import LoopConfig, RetrainLoop
from core.model.probe import LinearProbe
from tests.engine_data import clusters
from tests.probe_fits import ProbeFit

WAIT = 30  # seconds; only reached when something is broken, so no test is timed


class Recorder:
    def __init__(self):
        self.models, self.errors = [], []

    def on_model(self, version, model, metrics):
        self.models.append((version, model, metrics))

    def on_error(self, error):
        self.errors.append(error)


def counting_fit(indices, labels, previous):
    return {"n": len(indices), "labels": dict(zip(indices.tolist(), labels.tolist()))}, {"score": 1.0}


@pytest.fixture
def make_loop():
    loops = []

    def make(**kwargs):
        loop = RetrainLoop(**kwargs)
        loops.append(loop)
        return loop

    yield make
    for loop in loops:
        loop.close(WAIT)


def test_retrains_after_every_k_labels_and_reports_the_version(make_loop):
    recorder = Recorder()
    loop = make_loop(fit=counting_fit, config=LoopConfig(retrain_every=5), callbacks=[recorder])
    loop.add_labels([1, 2, 3, 4], ["a"] * 4)
    assert loop.wait_idle(WAIT)
    assert loop.current[0] == 0 and recorder.models == []  # 4 < 5: nothing yet
    loop.add_labels([5], ["b"])
    assert loop.wait_idle(WAIT)
    version, model, metrics = loop.current
    assert version == 1 and model["n"] == 5
    assert metrics["n_labels"] == 5 and metrics["score"] == 1.0 and metrics["fit_seconds"] >= 0
    assert [v for v, _, _ in recorder.models] == [1]


def test_labels_the_initial_model_was_trained_on_are_not_new(make_loop):
    recorder = Recorder()
    loop = make_loop(
        fit=counting_fit,
        config=LoopConfig(retrain_every=3),
        callbacks=[recorder],
        model="stored",
        version=4,
        trained_on=([1, 2, 3, 4], ["a", "b", "a", ("b", "c")]),
    )
    assert loop.wait_idle(WAIT)
    assert loop.current[:2] == (4, "stored") and recorder.models == []  # 4 labels >= 3, but none new
    loop.add_labels([5, 6], ["a", "b"])
    loop.remove_labels([1])
    assert loop.wait_idle(WAIT)
    version, model, _ = loop.current
    assert version == 5 and model["labels"] == {2: "b", 3: "a", 4: ("b", "c"), 5: "a", 6: "b"}


def test_retrain_on_demand_and_latest_label_wins(make_loop):
    loop = make_loop(fit=counting_fit, config=LoopConfig(retrain_every=100))
    loop.add_labels([7, 8], ["cat", "dog"])
    loop.add_labels([7], ["emu"])
    loop.request_retrain()
    assert loop.wait_idle(WAIT)
    version, model, _ = loop.current
    assert version == 1 and model["labels"] == {7: "emu", 8: "dog"}


def test_labels_are_accepted_while_a_retrain_runs_and_the_old_model_serves(make_loop):
    started, release = threading.Event(), threading.Event()

    def slow_fit(indices, labels, previous):
        started.set()
        assert release.wait(WAIT)
        return counting_fit(indices, labels, previous)

    loop = make_loop(fit=slow_fit, config=LoopConfig(retrain_every=2), model="v0 model")
    loop.add_labels([1, 2], [0, 1])
    assert started.wait(WAIT)
    # The fit is blocked: these calls must return anyway, and v0 keeps serving.
    loop.add_labels([3, 4], [0, 1])
    loop.request_retrain()
    assert loop.current == (0, "v0 model", {})
    release.set()
    assert loop.wait_idle(WAIT)
    version, model, _ = loop.current
    assert version == 2 and model["n"] == 4  # the labels that arrived mid-fit got their own retrain


def test_a_failing_retrain_leaves_the_previous_version_serving(make_loop):
    recorder = Recorder()
    calls = []

    def flaky_fit(indices, labels, previous):
        calls.append(len(indices))
        if len(calls) == 2:
            raise RuntimeError("out of memory halfway through")
        return counting_fit(indices, labels, previous)

    loop = make_loop(fit=flaky_fit, config=LoopConfig(retrain_every=1), callbacks=[recorder])
    loop.add_labels([1], [0])
    assert loop.wait_idle(WAIT)
    serving = loop.current
    loop.add_labels([2], [1])
    assert loop.wait_idle(WAIT)
    assert loop.current is serving and serving[0] == 1
    assert [str(e) for e in recorder.errors] == ["out of memory halfway through"]
    loop.add_labels([3], [1])  # the loop survives and the next retrain succeeds
    assert loop.wait_idle(WAIT)
    assert loop.current[0] == 2 and loop.current[1]["n"] == 3


def test_a_failing_callback_is_reported_and_does_not_stop_the_loop(make_loop):
    class Broken:
        def on_model(self, version, model, metrics):
            raise ValueError("database is locked")

    recorder = Recorder()
    loop = make_loop(fit=counting_fit, config=LoopConfig(retrain_every=1), callbacks=[Broken(), recorder])
    loop.add_labels([1], [0])
    assert loop.wait_idle(WAIT)
    assert loop.current[0] == 1
    assert [str(e) for e in recorder.errors] == ["database is locked"]
    loop.add_labels([2], [0])
    assert loop.wait_idle(WAIT) and loop.current[0] == 2


@pytest.mark.slow
def test_a_probe_fit_trains_probes_that_grow_with_new_classes(make_loop):
    X, y = clusters([40, 40, 40], seed=0)
    recorder = Recorder()
    loop = make_loop(fit=ProbeFit(X), config=LoopConfig(retrain_every=20), callbacks=[recorder])
    first = np.flatnonzero(y < 2)[::2]
    loop.add_labels(first, y[first])
    assert loop.wait_idle(WAIT)
    v1_probe = loop.current[1]
    assert isinstance(v1_probe, LinearProbe) and list(v1_probe.classes_) == [0, 1]
    rest = np.flatnonzero(y == 2)[:20]
    loop.add_labels(rest, y[rest])
    assert loop.wait_idle(WAIT)
    version, probe, metrics = loop.current
    assert version == 2 and list(probe.classes_) == [0, 1, 2]
    assert probe is not v1_probe and list(v1_probe.classes_) == [0, 1]  # the served probe was not mutated
    assert metrics["n_classes"] == 3 and metrics["oof_accuracy"] > 0.9
    assert [v for v, _, _ in recorder.models] == [1, 2]


def test_close_stops_the_worker(make_loop):
    loop = make_loop(fit=counting_fit)
    loop.close(WAIT)
    assert not loop._thread.is_alive()
    with pytest.raises(ValueError, match="indices"):
        loop.add_labels([1, 2], [0])


def test_removed_labels_are_forgotten_and_count_as_changes(make_loop):
    loop = make_loop(fit=counting_fit, config=LoopConfig(retrain_every=2))
    loop.add_labels([1, 2], ["a", ("b", "c")])  # a label may be a tuple (a multi-label class set)
    assert loop.wait_idle(WAIT)
    assert loop.current[1]["labels"] == {1: "a", 2: ("b", "c")}
    loop.remove_labels([1])
    loop.remove_labels([9])  # never labeled: nothing to forget, still a change
    assert loop.wait_idle(WAIT)
    version, model, _ = loop.current
    assert version == 2 and model["labels"] == {2: ("b", "c")}
    loop.remove_labels([2])
    loop.request_retrain()  # nothing left: the served model must forget what it learned
    assert loop.wait_idle(WAIT)
    assert loop.current[0] == 3 and loop.current[1]["n"] == 0


def test_no_retrain_without_labels_or_a_model(make_loop):
    loop = make_loop(fit=counting_fit, config=LoopConfig(retrain_every=1))
    loop.remove_labels([1, 2])
    loop.request_retrain()
    assert loop.wait_idle(WAIT)
    assert loop.current == (0, None, {})
