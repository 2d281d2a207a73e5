"""Simulated labeling sessions: an oracle answers asks, accuracy is measured per budget.

Every strategy, ours and the peers, starts from no labels, asks in rounds up to each
budget, has its asks answered with the true labels, and is scored by the same probe
(:class:`core.model.probe.LinearProbe`) on the same held-out images. With
``semi_supervised``, each is also scored by a learner that uses the unlabeled pool too
(:class:`core.model.propagation.SemiSupervisedProbe`, its graph built once per pool): the
selection alone, and the selection with a learner that propagates labels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from core.model.probe import LinearProbe
from core.model.propagation import LabelSpreading, SemiSupervisedProbe
from core.selection.peers import PEERS, peer_pick
from core.selection.selection import ALL_STRATEGIES, SelectionConfig, select


@dataclass(frozen=True)
class SimulationConfig:
    budgets: tuple[int, ...] = (10, 20, 50, 100, 200, 500, 1000)
    seeds: int = 3
    ours: tuple[str, ...] = ("default", "margin", "typicality", "random")
    peers: tuple[str, ...] = PEERS
    semi_supervised: bool = False  # also score with the label-propagating learner (slower)


def evaluation_probe():
    """The probe every strategy is scored with (and ours select with): no out-of-fold fits, for speed."""
    return LinearProbe(n_folds=0, calibrate=False, warm_start=False)


def run_strategy(strategy, pool, oracle, test, test_labels, *, budgets, seed, classes, log=None, spreading=None):
    """One simulated session of one strategy; yields a result row per budget.

    ``strategy`` is ``"ours:NAME"`` (a :func:`core.selection.selection.select` strategy, without
    audit asks) or ``"peer:NAME"`` (a :mod:`core.selection.peers` strategy). With ``spreading``
    (a :class:`LabelSpreading` fit on ``pool``), rows also hold ``semi_accuracy``.
    """
    family, name = strategy.split(":", 1)
    rng = np.random.default_rng(seed)
    labeled = np.zeros(0, dtype=np.int64)
    probe = None
    for budget in budgets:
        started = time.perf_counter()
        need = min(budget, len(pool)) - len(labeled)
        if need > 0:
            if family == "ours":
                picks = select(
                    pool,
                    labeled,
                    oracle[labeled],
                    need,
                    strategy=name,
                    probe=probe,
                    config=SelectionConfig(audit_share=0.0),
                    rng=rng,
                ).indices
            else:
                picks = peer_pick(name, pool, labeled, oracle[labeled], need, rng=rng, classes=classes)
            labeled = np.concatenate([labeled, np.asarray(picks, np.int64)])
        probe = evaluation_probe().fit(pool[labeled], oracle[labeled])
        accuracy = float(np.mean(probe.predict(test) == test_labels))
        row = dict(
            strategy=strategy,
            seed=seed,
            budget=budget,
            labels=len(labeled),
            distinct_labeled=len(np.unique(labeled)),
            classes_found=len(np.unique(oracle[labeled])),
            accuracy=accuracy,
            seconds=round(time.perf_counter() - started, 3),
        )
        if spreading is not None:
            rows = np.unique(labeled)
            semi = SemiSupervisedProbe(spreading=spreading).fit(pool, rows, oracle[rows], classes=classes)
            row["semi_accuracy"] = float(np.mean(semi.predict(test) == test_labels))
        if log:
            log(row)
        yield row


def run_simulation(pool, oracle, test, test_labels, *, config=SimulationConfig(), log=None):
    """Every strategy of ``config`` for every seed; returns a list of result rows.

    Parameters
    ----------
    pool : ndarray of shape (N, D)
        L2-normalised embeddings of the unlabeled pool.
    oracle : ndarray of shape (N,), int
        True class of each pool item, revealed only when asked.
    test, test_labels : ndarray of shape (M, D) and (M,)
        Held-out images for accuracy.
    """
    unknown = [s for s in config.ours if s not in ALL_STRATEGIES] + [p for p in config.peers if p not in PEERS]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; ours: {ALL_STRATEGIES}, peers: {PEERS}")
    classes = np.unique(np.concatenate([oracle, test_labels]))
    strategies = [f"ours:{s}" for s in config.ours] + [f"peer:{p}" for p in config.peers]
    spreading = LabelSpreading().fit(pool) if config.semi_supervised else None
    rows = []
    for seed in range(config.seeds):
        for strategy in strategies:
            rows.extend(
                run_strategy(
                    strategy,
                    pool,
                    oracle,
                    test,
                    test_labels,
                    budgets=config.budgets,
                    seed=seed,
                    classes=classes,
                    log=log,
                    spreading=spreading,
                )
            )
    return rows


def summarize(rows):
    """Mean and standard deviation of accuracy per strategy and budget; a strategy scored by the
    label-propagating learner too also appears as ``"<strategy> +propagation"``.

    Returns
    -------
    list of dict with keys strategy, budget, mean, std, runs
    """
    groups = {}
    for row in rows:
        groups.setdefault((row["strategy"], row["budget"]), []).append(row["accuracy"])
        if "semi_accuracy" in row:
            groups.setdefault((f"{row['strategy']} +propagation", row["budget"]), []).append(row["semi_accuracy"])
    return [
        dict(strategy=s, budget=b, mean=float(np.mean(v)), std=float(np.std(v)), runs=len(v))
        for (s, b), v in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1]))
    ]
