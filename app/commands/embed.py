"""``embed``: compute a backbone's embeddings of a project's images and update the similarity index."""

from __future__ import annotations

import argparse
import sys

from core.backbones import BACKBONE_NAMES
from core.extract import ExtractConfig
from services.config import Settings
from services.database import open_database
from services.embeddings import embed


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = ExtractConfig()
    parser = subparsers.add_parser(
        "embed",
        help="embed the project's images with a backbone and update the similarity index",
        description=(
            "Embed every ingested image of a project that this backbone has not embedded yet, then add "
            "them to the similarity index. An interrupted run continues where it stopped. Images that "
            "cannot be decoded are listed with the reason; the rest goes on. Exits 0 when the run "
            "completes, 1 when it cannot run. Backbones: " + ", ".join(BACKBONE_NAMES) + "; published "
            "ones read their weights from the torch hub cache ($TORCH_HOME/hub/checkpoints) and never download."
        ),
    )
    parser.add_argument("--backbone", help="backbone name (default: the BANANA_BACKBONE setting, 'bundled')")
    parser.add_argument("--project", help="project name (default: the BANANA_PROJECT setting, 'default')")
    parser.add_argument("--device", default=defaults.device, help="cpu, cuda, cuda:N or mps (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help=f"images per batch (default: {defaults.batch_size})")
    parser.add_argument("--workers", type=int, help="image-decoding processes (default: CPU count - 1, at most 8)")
    parser.add_argument("--half", action="store_true", help="float16 model on cuda or mps")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    config = ExtractConfig(batch_size=args.batch_size, num_workers=args.workers, device=args.device, half=args.half)
    with open_database(settings) as db:
        report = embed(db, settings, project=args.project or settings.project, backbone=args.backbone or settings.backbone,
                       config=config, show_progress=sys.stderr.isatty())
    print(f"backbone {report.backbone}")
    print(f"embeddings in {report.folder}")
    print(f"embedded: {report.embedded}")
    print(f"already embedded: {report.already_done}")
    print(f"errors: {len(report.errors)}")
    for message in report.errors:
        print(f"  {message}")
    print(f"index: {report.index_kind}, {report.index_size} items")
    return 0
