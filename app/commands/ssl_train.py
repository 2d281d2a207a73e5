"""``ssl-train``: self-supervised pretraining on the project's own images."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from services.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ssl-train",
        help="train a backbone with SimCLR on the project's own images",
        description=(
            "Self-supervised training (SimCLR) of a small ResNet on every ingested image of a project. "
            "The result is a backbone file that `embed --backbone local:PATH` uses. Training state is "
            "saved as it goes; run the same command again to resume after an interruption."
        ),
    )
    parser.add_argument("--project", help="project name (default: the BANANA_PROJECT setting)")
    # Defaults (None) come from core.ssl.simclr.SimCLRConfig, read in run() so --help never imports torch.
    parser.add_argument("--epochs", type=int, help="passes over the pool (default 100)")
    parser.add_argument("--batch-size", type=int, help="images per step (default 512)")
    parser.add_argument(
        "--image-size",
        type=int,
        help="training and embedding resolution in pixels, images resized and centre-cropped (default 32)",
    )
    parser.add_argument("--seed", type=int, help="seed of weights, data order and augmentations (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps; bfloat16 autocast is used on cuda")
    parser.add_argument(
        "--out", type=Path, help="backbone file to write (default: $BANANA_HOME/models/ssl-PROJECT.safetensors)"
    )
    parser.add_argument("--state", type=Path, help="resumable training state (default: beside --out's default)")
    parser.add_argument(
        "--init",
        metavar="BACKBONE",
        help="start from this backbone file, or `bundled`, instead of random weights "
        "(its network shape and image size are used)",
    )
    parser.add_argument(
        "--knn-folder", type=Path, help="labeled folder <class>/<image> read only to report kNN accuracy while training"
    )
    parser.add_argument("--knn-every", type=int, default=10, help="epochs between kNN reports")
    parser.set_defaults(run=run)


class LossBar:
    """tqdm bar over optimisation steps, showing the latest loss."""

    def __init__(self):
        from tqdm import tqdm

        self.bar = tqdm(unit="step", disable=not sys.stderr.isatty())

    def on_step(self, trainer, step, loss):
        if step % 10 == 0 or step == trainer.total_steps_:
            self.bar.total = trainer.total_steps_
            self.bar.n = step
            self.bar.set_postfix(loss=f"{float(loss):.3f}")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from core.ssl.simclr import SimCLRConfig
    from services.database import open_database
    from services.features.ssl_training import train_backbone

    chosen = dict(epochs=args.epochs, batch_size=args.batch_size, image_size=args.image_size, seed=args.seed)
    config = replace(SimCLRConfig(), **{name: value for name, value in chosen.items() if value is not None})
    project = args.project or settings.project
    init = None
    if args.init:
        from core.features.backbones import BUNDLED_PATH
        from services.errors import UserError

        init = BUNDLED_PATH if args.init == "bundled" else Path(args.init)
        if args.image_size is not None:
            raise UserError(
                "--image-size cannot be combined with --init: training continues at the image size "
                "the --init backbone was trained at"
            )
    with open_database(settings) as db:
        bar = LossBar()
        result = train_backbone(
            db,
            settings,
            project=project,
            config=config,
            device=args.device,
            out=args.out,
            state=args.state,
            knn_folder=args.knn_folder,
            knn_every=args.knn_every,
            init=init,
            callbacks=[bar],
            log=lambda line: tqdm.write(line, file=sys.stderr),
        )
        bar.bar.close()
    print(f"trained on {result.n_images} images for {result.steps} steps")
    if result.knn_accuracy is not None:
        print(f"kNN accuracy on {args.knn_folder}: {result.knn_accuracy:.1%}")
    print(f"backbone written to {result.path}")
    print(f"use it with: python -m app.cli embed --backbone local:{result.path}")
    return 0
