"""``export-embeddings``: write a project's embeddings to .npy with a CSV of item ids and paths."""

from __future__ import annotations

import argparse
from pathlib import Path

from services.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-embeddings",
        help="write embeddings to a .npy file with a CSV of item ids and paths beside it",
        description=(
            "Write the embeddings of every embedded image as a float32 array (one row per item, in "
            "item-id order) to OUT, and OUT with suffix .csv listing row, item_id and path (relative "
            "to the project root; one a spreadsheet would run as a formula gets a ' in front) for each row, "
            "for use in other tools."
        ),
    )
    parser.add_argument("--out", type=Path, required=True, metavar="OUT", help="file to write, ending in .npy")
    parser.add_argument("--backbone", help="backbone whose embeddings to export (default: the project's backbone)")
    parser.add_argument("--project", help="project name (default: the BANANA_PROJECT setting, 'default')")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from services.database import open_database
    from services.features.embeddings import export_embeddings  # imports torch: not at --help time

    with open_database(settings) as db:
        report = export_embeddings(
            db, settings, project=args.project or settings.project, backbone=args.backbone, out=args.out
        )
    print(f"wrote {report.rows} embeddings to {report.vectors} and their item ids and paths to {report.table}")
    if report.not_embedded:
        print(f"{report.not_embedded} ingested images have no embedding yet; run `embed` to add them")
    return 0
