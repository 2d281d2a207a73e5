"""Simulated labeling sessions on a labeled folder: embed it, split it, run the strategies, write results."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.evaluation.simulate import SimulationConfig, run_simulation, summarize
from core.features.backbones import BackboneError, build_backbone
from core.features.embedding_store import EmbeddingStore, StoreBusy
from core.features.extract import ExtractConfig, extract_embeddings
from core.transfer.class_folder import list_class_folder
from services.config import Settings
from services.errors import UserError
from services.features.project_backbone import default_backbone

ORACLE_FILE = "oracle.json"
BASELINE_STRATEGIES = ("ours:random", "peer:random")


def default_output(settings: Settings, oracle: Path) -> Path:
    """Where a simulation of ``oracle`` writes by default; the dashboard looks there for baselines."""
    return settings.home / "simulations" / Path(os.path.realpath(oracle)).name


def random_baseline(settings: Settings, folder: str) -> list[tuple[int, float]] | None:
    """Random sampling's mean accuracy per budget from the newest simulation whose oracle is ``folder``.

    Returns None when no simulation of that folder has been run.
    """
    wanted = os.path.realpath(folder)
    found = []
    for meta in (settings.home / "simulations").glob(f"*/{ORACLE_FILE}"):
        try:
            if json.loads(meta.read_text()).get("oracle") == wanted and (meta.parent / "summary.csv").exists():
                found.append(meta.parent / "summary.csv")
        except (OSError, ValueError):
            continue
    if not found:
        return None
    with open(max(found, key=lambda p: p.stat().st_mtime), newline="") as handle:
        rows = list(csv.DictReader(handle))
    for strategy in BASELINE_STRATEGIES:
        points = sorted((int(r["budget"]), float(r["mean"])) for r in rows if r["strategy"] == strategy)
        if points:
            return points
    return None


@dataclass(frozen=True)
class SimulationReport:
    results: Path
    summary: Path
    plot: Path
    pool_size: int
    test_size: int
    table: str


def folder_embeddings(settings: Settings, folder: Path, backbone: str, *, config=ExtractConfig(), progress=None):
    """Embeddings of every image of a ``<class>/<image>`` folder, cached per folder and backbone.

    Returns
    -------
    vectors : ndarray of shape (N, D), float32
    labels : ndarray of shape (N,), int
    classes : list of str
    """
    try:
        paths, labels, classes = list_class_folder(folder)
        model = build_backbone(backbone)
    except (BackboneError, FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from None
    listing = hashlib.sha256("\n".join(map(str, paths)).encode()).hexdigest()[:12]
    cache = settings.home / "simulations" / "embeddings" / f"{Path(folder).name}-{listing}" / model.identity.key
    try:
        with EmbeddingStore.open_for_writing(cache, backbone=model.describe(), dim=model.embed_dim) as store:
            report = extract_embeddings(
                model, store, np.arange(len(paths)), [str(p) for p in paths], config=config, progress=progress
            )
            ids, vectors = store.done()
    except (StoreBusy, ValueError) as error:
        raise UserError(str(error)) from None
    if report.failures:
        raise UserError(
            f"{len(report.failures)} images of {folder} could not be embedded, e.g. "
            f"{report.failures[0].message}; remove them from the folder and run again"
        )
    order = np.argsort(ids)
    return vectors[order], labels[ids[order]], classes


def _shorter_sides(folder: Path, sample: int = 50) -> list[int]:
    """Shorter sides of up to ``sample`` images of a ``<class>/<image>`` folder (headers only)."""
    try:
        paths = list_class_folder(folder)[0]
    except (FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from None
    sides = []
    for path in paths[:: max(1, len(paths) // sample)][:sample]:
        try:
            with Image.open(path) as image:
                sides.append(min(image.size))
        except OSError:
            continue  # reported when the folder is embedded
    return sides


def simulate(
    settings: Settings,
    *,
    oracle: Path,
    backbone: str | None,
    out: Path,
    config: SimulationConfig,
    pool_size: int,
    test_size: int,
    split_seed: int = 0,
    extract=ExtractConfig(),
    progress=None,
    log=None,
) -> SimulationReport:
    """Run every strategy on a random pool/test split of ``oracle`` and write CSVs and a plot.

    Class folder names of ``oracle`` answer the asks and score the probe; the
    strategies never see them except through answered asks. ``backbone`` None: the default a
    project of these images would get (``services.features.project_backbone.default_backbone``).
    """
    backbone = backbone or default_backbone(_shorter_sides(oracle)).name
    vectors, labels, classes = folder_embeddings(settings, oracle, backbone, config=extract, progress=progress)
    if test_size + min(pool_size, 1) > len(vectors) or test_size < 1:
        raise UserError(f"{oracle} has {len(vectors)} images; --test-size {test_size} must leave a pool")
    order = np.random.default_rng(split_seed).permutation(len(vectors))
    test, pool = order[:test_size], order[test_size : test_size + pool_size]
    if max(config.budgets) > len(pool):
        raise UserError(
            f"largest budget {max(config.budgets)} exceeds the pool of {len(pool)} images; "
            "lower --budgets or raise --pool-size"
        )
    rows = run_simulation(vectors[pool], labels[pool], vectors[test], labels[test], config=config, log=log)
    out.mkdir(parents=True, exist_ok=True)
    results, summary_path, plot = out / "results.csv", out / "summary.csv", out / "accuracy.png"
    _write_csv(results, rows)
    summary = summarize(rows)
    _write_csv(summary_path, summary)
    (out / ORACLE_FILE).write_text(json.dumps(dict(oracle=os.path.realpath(oracle), backbone=backbone)))
    _plot(summary, plot, title=f"{oracle.name}: pool {len(pool)}, test {len(test)}, backbone {backbone}")
    return SimulationReport(
        results=results,
        summary=summary_path,
        plot=plot,
        pool_size=len(pool),
        test_size=len(test),
        table=markdown_table(summary, config.budgets),
    )


def markdown_table(summary, budgets):
    """Mean accuracy (± std over seeds) per strategy (rows) and budget (columns)."""
    cells = {(row["strategy"], row["budget"]): row for row in summary}
    strategies = list(dict.fromkeys(row["strategy"] for row in summary))
    lines = ["| strategy | " + " | ".join(str(b) for b in budgets) + " |", "|---" * (len(budgets) + 1) + "|"]
    for strategy in strategies:
        values = [cells.get((strategy, b)) for b in budgets]
        lines.append(
            f"| {strategy} | " + " | ".join(f"{v['mean']:.1%} ± {v['std']:.1%}" if v else "" for v in values) + " |"
        )
    return "\n".join(lines)


def _write_csv(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _plot(summary, path, *, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    for strategy in dict.fromkeys(row["strategy"] for row in summary):
        points = [row for row in summary if row["strategy"] == strategy]
        budgets = [row["budget"] for row in points]
        means = np.array([row["mean"] for row in points])
        stds = np.array([row["std"] for row in points])
        style = "-" if strategy.startswith("ours:") else "--"
        axes.plot(budgets, means, style, marker="o", label=strategy)
        axes.fill_between(budgets, means - stds, means + stds, alpha=0.1)
    axes.set_xscale("log")
    axes.set_xlabel("labels")
    axes.set_ylabel("held-out accuracy")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
