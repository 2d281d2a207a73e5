"""Precision and recall of the label-issue flags against planted errors, CIFAR-10, bundled backbone.

A pool of ``--per-class`` random CIFAR-10 training images per class is embedded with the bundled
backbone (``benchmarks.bench_backbones``' cache and helpers). For each budget (100, 300, 1,000
labels) and seed: that many random pool images, 10% of their labels flipped to another random
class, a 5-fold ``LinearProbe`` for out-of-fold probabilities (as
``services.data_engine.label_issues`` fits it), then ``core.quality.label_issues.find_issues``
with the app's defaults, beside cleanlab's confident learning alone (the former rule).
Precision is NaN (n/a) where nothing was flagged; "withheld" counts seeds where the gates
(too few labels per class, model too weak) flagged nothing and warned. The load average is
printed before and after.

    python -m benchmarks.bench_label_issues [--per-class 300] [--seeds 3] [--work-dir /tmp/bench_label_issues]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from benchmarks.bench_backbones import cached_embeddings, cifar_pool, load_average, mean_sd
from core.features.backbones import build_backbone
from core.model.probe import LinearProbe
from core.quality.label_issues import LabelIssueConfig, find_issues

BUDGETS = (100, 300, 1000)
FLIP_SHARE = 0.10
FORMER = LabelIssueConfig(max_given_proba=1.0, min_per_class=1, min_skill=-1.0)  # confident learning alone


def planted(x, y, n_labels, seed, n_classes):
    """(given labels, flipped positions, probe out-of-fold probabilities) for one budget and seed."""
    rng = np.random.default_rng(seed)
    subset = rng.permutation(len(y))[:n_labels]
    given = y[subset].copy()
    flipped = rng.choice(n_labels, round(FLIP_SHARE * n_labels), replace=False)
    given[flipped] = (given[flipped] + rng.integers(1, n_classes, len(flipped))) % n_classes
    probe = LinearProbe(n_folds=5, random_state=seed).fit(x[subset], given)
    return given, flipped, probe.oof_proba_


def scores(issues, flipped):
    flagged = issues.positions
    hits = np.isin(flagged, flipped).sum()
    precision = hits / len(flagged) if len(flagged) else float("nan")
    return precision, hits / len(flipped), len(flagged)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/bench_label_issues"))
    args = parser.parse_args()
    print(f"load average before: {load_average()}")
    paths, y, _ = cifar_pool(args.work_dir, args.per_class)
    x, _, _, _, _ = cached_embeddings(
        args.work_dir, "cifar10", "bundled", lambda: build_backbone("bundled"), paths, fresh=False
    )
    n_classes = int(y.max()) + 1
    config = LabelIssueConfig()
    print(f"\npool {len(y)} images; {FLIP_SHARE:.0%} of the labels flipped; {args.seeds} seeds; mean ± sd")
    print(f"defaults: {dataclasses.asdict(config)}\n")
    print("| labels | OOF accuracy | rule | flagged | precision | recall | withheld |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n_labels in BUDGETS:
        runs = [planted(x, y, n_labels, seed, n_classes) for seed in range(args.seeds)]
        for name, rule in (("former: confident learning alone", FORMER), ("now: strong evidence, gated", config)):
            found = [find_issues(given, proba, config=rule) for given, _, proba in runs]
            figures = np.array([scores(issues, flipped) for issues, (_, flipped, _) in zip(found, runs)])
            accuracy = mean_sd([issues.accuracy for issues in found])
            withheld = sum(issues.warning is not None for issues in found)
            print(
                f"| {n_labels} | {accuracy} | {name} | {mean_sd(figures[:, 2], percent=False)} | "
                f"{mean_sd(figures[:, 0], percent=False)} | {mean_sd(figures[:, 1], percent=False)} | "
                f"{withheld}/{len(found)} |"
            )
    print(f"\nload average after: {load_average()}")


if __name__ == "__main__":
    main()
