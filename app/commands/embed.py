"""``embed``: compute a backbone's embeddings of a project's images and update the similarity index."""

from __future__ import annotations

import argparse
import sys

from services.config import Settings

# Listed here, not imported from core.features.backbones, so --help never imports torch; a test keeps them equal.
BACKBONE_NAMES = (
    "bundled",
    "local:PATH",
    "efficientnet_lite0",
    "dinov2_vits14",
    "dinov2_vitb14",
    "dino_vits16",
    "dino_resnet50",
    "swav_resnet50",
    "resnet50",
    "timm:NAME",
    "ARCH@PATH",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="embed the project's images with a backbone and update the similarity index",
        description=(
            "Embed every ingested image of a project that this backbone has not embedded yet, then add "
            "them to the similarity index. An interrupted run continues where it stopped. Images that "
            "cannot be decoded are listed with the reason; the rest goes on. Exits 0 when the run "
            "completes, 1 when it cannot run. Backbones: " + ", ".join(BACKBONE_NAMES) + "; published "
            "ones read their weights from the torch hub cache ($TORCH_HOME/hub/checkpoints, where "
            "`fetch-backbone NAME` puts them) or the Hugging Face hub cache, and never download."
        ),
    )
    parser.add_argument(
        "--backbone", help="backbone name (default: the project's backbone; see the `backbone` command)"
    )
    parser.add_argument("--project", help="project name (default: the BANANA_PROJECT setting, 'default')")
    # Defaults (None) come from core.features.extract.ExtractConfig, read in run() so --help never imports torch.
    parser.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cpu)")
    parser.add_argument("--batch-size", type=int, help="images per batch (default: 64)")
    parser.add_argument("--workers", type=int, help="image-decoding processes (default: CPU count - 1, at most 8)")
    parser.add_argument("--half", action="store_true", help="float16 model on cuda or mps")
    add_wait_option(parser)
    parser.set_defaults(run=run)


def add_wait_option(parser: argparse.ArgumentParser) -> None:
    """``--wait``: how long a command waits while another process writes the embeddings it needs."""
    parser.add_argument(
        "--wait",
        type=float,
        default=10,
        metavar="MINUTES",
        help="while another process (the app adding new images, another command) writes these "
        "embeddings, wait up to this long, then continue with what is still missing "
        "(default: 10; 0 fails at once)",
    )


def say_waiting(folder) -> None:
    print(
        f"Another process is writing the embeddings in {folder} (the app does so when new images "
        "arrive); waiting for it to finish…",
        file=sys.stderr,
        flush=True,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from core.features.extract import ExtractConfig
    from services.database import open_database
    from services.features.embeddings import embed

    given = {"batch_size": args.batch_size, "num_workers": args.workers, "device": args.device}
    config = ExtractConfig(half=args.half, **{name: value for name, value in given.items() if value is not None})
    with open_database(settings) as db:
        report = embed(
            db,
            settings,
            project=args.project or settings.project,
            backbone=args.backbone,
            config=config,
            show_progress=sys.stderr.isatty(),
            wait_seconds=args.wait * 60,
            on_wait=say_waiting,
        )
    print(f"backbone {report.backbone}")
    print(f"embeddings in {report.folder}")
    print(f"embedded: {report.embedded}")
    print(f"already embedded: {report.already_done}")
    print(f"errors: {len(report.errors)}")
    for message in report.errors:
        print(f"  {message}")
    print(f"index: {report.index_kind}, {report.index_size} items")
    return 0
