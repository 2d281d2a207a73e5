"""Simulator: every strategy labels up to each budget, oracle answers, one probe scores them all."""

import csv

import numpy as np
import pytest

from app.cli import main
from core.evaluation.simulate import SimulationConfig, run_simulation, summarize
from services.config import Settings
from services.evaluation.simulation import random_baseline
from tests.embedding_helpers import write_colour_images


def clusters(n, rng, k=4, dim=16):
    centres = np.eye(dim)[:k] * 3
    labels = rng.integers(0, k, n)
    x = centres[labels] + rng.normal(scale=0.5, size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


@pytest.mark.slow
def test_every_strategy_reaches_each_budget_and_is_scored_on_the_test_set():
    rng = np.random.default_rng(0)
    pool, oracle = clusters(400, rng)
    test, test_labels = clusters(200, rng)
    config = SimulationConfig(budgets=(4, 12, 30), seeds=2, ours=("default", "random"), peers=("random", "coreset"))
    rows = run_simulation(pool, oracle, test, test_labels, config=config)
    assert len(rows) == 2 * 4 * 3
    for row in rows:
        assert row["labels"] == row["distinct_labeled"] == row["budget"]
    # Well separated clusters: 30 labels from any strategy should classify nearly everything.
    at_30 = [row["accuracy"] for row in rows if row["budget"] == 30]
    assert min(at_30) > 0.9
    summary = summarize(rows)
    assert {(r["strategy"], r["budget"]) for r in summary} == {
        (s, b) for s in ("ours:default", "ours:random", "peer:random", "peer:coreset") for b in (4, 12, 30)
    }
    assert all(r["runs"] == 2 for r in summary)


@pytest.mark.slow
def test_the_label_propagating_learner_scores_every_strategy_too():
    rng = np.random.default_rng(1)
    pool, oracle = clusters(300, rng)
    test, test_labels = clusters(100, rng)
    config = SimulationConfig(budgets=(4, 12), seeds=1, ours=("random",), peers=(), semi_supervised=True)
    rows = run_simulation(pool, oracle, test, test_labels, config=config)
    assert all(0 <= row["semi_accuracy"] <= 1 for row in rows)
    # One label per class of well separated clusters: the pool's structure labels the rest.
    assert next(row for row in rows if row["budget"] == 12)["semi_accuracy"] > 0.9
    strategies = {r["strategy"] for r in summarize(rows)}
    assert strategies == {"ours:random", "ours:random +propagation"}


def test_unknown_strategy_is_named():
    rng = np.random.default_rng(0)
    pool, oracle = clusters(50, rng)
    with pytest.raises(ValueError, match="bogus"):
        run_simulation(pool, oracle, pool, oracle, config=SimulationConfig(ours=("bogus",), peers=()))


@pytest.mark.slow
def test_simulate_command_writes_results_summary_and_plot(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BANANA_HOME", str(tmp_path / "home"))
    oracle = tmp_path / "oracle"
    for colour_folder, offset in (("a", 0), ("b", 1), ("c", 2)):
        write_colour_images(oracle / colour_folder, per_colour=3, seed=offset)
    argv = [
        "simulate",
        "--oracle",
        str(oracle),
        "--budgets",
        "3,9",
        "--seeds",
        "1",
        "--pool-size",
        "20",
        "--test-size",
        "7",
        "--ours",
        "default",
        "--peers",
        "random",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| ours:default |" in printed and "| peer:random |" in printed
    out = tmp_path / "home" / "simulations" / "oracle"
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["strategy"], r["budget"]) for r in rows] == [
        ("ours:default", "3"),
        ("ours:default", "9"),
        ("peer:random", "3"),
        ("peer:random", "9"),
    ]
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The dashboard of a project on that folder finds random sampling's curve there.
    settings = Settings(home=tmp_path / "home")
    baseline = random_baseline(settings, str(oracle))
    assert [budget for budget, _ in baseline] == [3, 9]
    assert all(0 <= accuracy <= 1 for _, accuracy in baseline)
    assert random_baseline(settings, str(tmp_path)) is None


@pytest.mark.slow
def test_simulate_refuses_a_budget_larger_than_the_pool(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BANANA_HOME", str(tmp_path / "home"))
    oracle = tmp_path / "oracle"
    write_colour_images(oracle / "a", per_colour=2)
    write_colour_images(oracle / "b", per_colour=2, seed=1)
    assert (
        main(["simulate", "--oracle", str(oracle), "--budgets", "50", "--test-size", "2", "--out", str(tmp_path / "o")])
        == 1
    )
    assert "exceeds the pool" in capsys.readouterr().err
