"""``label-issues``: labels that out-of-fold probabilities say are probably wrong, as CSV, for
teams that label in another tool."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.commands.embed import add_wait_option, say_waiting
from services.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "label-issues",
        help="write the labels that are probably wrong (out-of-fold evidence) to a CSV",
        description=(
            "Fit a probe with 5-fold out-of-fold probabilities on the project's current labels and write "
            "the labels that cleanlab's confident learning flags with strong evidence (the model gives the "
            "given label at most 5%%), most suspicious first: path, given label, suggested label, confidence "
            "that the given label is wrong. The same queue as the Label issues page; labels reviewed there "
            "are left out. When the model is too weak for flags to mean much (a class with fewer than 20 "
            "labels, or out-of-fold accuracy near chance) it flags nothing and says why. Images not embedded "
            "yet are embedded first. Single-label projects."
        ),
    )
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument("--project", help="project name (default: the BANANA_PROJECT setting, 'default')")
    parser.add_argument("--backbone", help="backbone whose embeddings to use (default: the project's backbone)")
    add_wait_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    from services.data_engine.label_issues import headless_label_issues, issues_csv  # imports torch
    from services.database import open_database
    from services.output_files import write_atomically

    settings = replace(settings, backbone=args.backbone or settings.backbone)  # None: the project's
    project = args.project or settings.project
    with open_database(settings) as db:
        queue, names = headless_label_issues(
            db, settings, project=project, wait_seconds=args.wait * 60, on_wait=say_waiting
        )
    write_atomically(args.out, issues_csv(queue, names))
    accuracy = (
        f"; out-of-fold accuracy {queue.accuracy:.0%}, always the most frequent class {queue.chance:.0%}"
        if queue.accuracy == queue.accuracy  # not NaN
        else ""
    )
    if queue.warning:
        print(f"no labels flagged: {queue.warning}", file=sys.stderr)
    print(
        f"{len(queue.issues)} of {queue.n_labeled} labels flagged ({queue.n_flagged - len(queue.issues)} more "
        f"already reviewed){accuracy} -> {args.out}"
    )
    return 0
