"""``simulate``: compare selection strategies with a simulated annotator on a labeled folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.config import Settings

OURS = "default,margin,typicality,random"
PEERS = "random,margin,typiclust,probcover,coreset"


def _csv_ints(text):
    try:
        values = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"budgets must be positive, got {text!r}")
    return values


def _csv_names(text):
    return tuple(v.strip() for v in text.split(",") if v.strip())


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="compare selection strategies with a simulated annotator",
        description=(
            "Simulated labeling sessions: the class folder names of ORACLE answer each ask. The folder is "
            "embedded with --backbone (cached), split at random into a pool and a held-out test set, and each "
            "strategy (ours, and the scikit-activeml peers) labels up to each budget from no labels; the same "
            "probe is then scored on the test set. Writes results.csv (every run), summary.csv (mean and std "
            "over seeds) and accuracy.png to --out."
        ),
    )
    parser.add_argument("--oracle", type=Path, required=True, metavar="FOLDER", help="labeled folder <class>/<image>")
    parser.add_argument("--budgets", type=_csv_ints, default=(10, 20, 50, 100, 200, 500, 1000))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--backbone", help="backbone name (default: BANANA_BACKBONE, else what a project of these images would get)"
    )
    parser.add_argument("--pool-size", type=int, default=10_000)
    parser.add_argument("--test-size", type=int, default=2_000)
    parser.add_argument("--ours", type=_csv_names, default=_csv_names(OURS), help=f"our strategies (default {OURS})")
    parser.add_argument(
        "--peers", type=_csv_names, default=_csv_names(PEERS), help=f"peer strategies (default {PEERS})"
    )
    parser.add_argument(
        "--semi-supervised",
        action="store_true",
        help="also score every strategy with a learner that propagates labels over the pool's kNN graph "
        "(rows '<strategy> +propagation'; slower)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="output folder (default $BANANA_HOME/simulations/<FOLDER name>, "
        "where the app's dashboard finds random sampling's curve for a project on FOLDER)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from core.evaluation.simulate import SimulationConfig
    from services.errors import UserError
    from services.evaluation.simulation import default_output, simulate

    config = SimulationConfig(
        budgets=args.budgets, seeds=args.seeds, ours=args.ours, peers=args.peers, semi_supervised=args.semi_supervised
    )
    bar = tqdm(unit="image", desc="embedding", disable=not sys.stderr.isatty())

    def progress(finished, total):
        bar.total, bar.n = total, finished
        bar.refresh()

    def log(row):
        tqdm.write(
            f"{row['strategy']:>18} seed {row['seed']} budget {row['budget']:>5}: "
            f"accuracy {row['accuracy']:.3f} ({row['seconds']:.1f}s)",
            file=sys.stderr,
        )

    try:
        out = args.out or default_output(settings, args.oracle)
        report = simulate(
            settings,
            oracle=args.oracle,
            backbone=args.backbone or settings.backbone,
            out=out,
            config=config,
            pool_size=args.pool_size,
            test_size=args.test_size,
            progress=progress,
            log=log,
        )
    except ValueError as error:
        raise UserError(str(error)) from None
    finally:
        bar.close()
    print(f"pool {report.pool_size} images, test {report.test_size} images\n")
    print(report.table)
    print(f"\nwrote {report.results}, {report.summary}, {report.plot}")
    return 0
