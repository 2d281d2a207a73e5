"""``select``: choose the next images to label and write them to a CSV, for labeling in another tool."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.commands.embed import add_wait_option, say_waiting
from core.selection.selection import ALL_STRATEGIES, PART_NAMES  # numpy only: --help stays fast
from services.config import Settings


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number of images, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "select",
        help="choose the next N images to label and write them to a CSV with the reasons",
        description=(
            "Embed the images not embedded yet, train the model on the current labels (or use the newest "
            "stored model if it was trained on them), choose N unlabeled images with the selection strategy, "
            "record the choice as a selection run, and write OUT: rank, path (relative to the project root), "
            "item_id, source (the rule that chose the image), predicted (classes, ;-separated), probability "
            "(of the most probable class), then one column per score part ("
            + ", ".join(PART_NAMES)
            + '; empty where a part does not apply). Images waiting in the Triage "Label these next" queue '
            "come first, in queue order, with source triage, and leave the queue (--no-queue leaves it alone); "
            "the strategy chooses the rest. The picks are not held from the app's labelers. "
            "The app's strategy setting is not changed."
        ),
    )
    parser.add_argument("--n", type=_positive, required=True, help="how many images to choose")
    parser.add_argument(
        "--strategy",
        default="default",
        choices=ALL_STRATEGIES,
        metavar="STRATEGY",
        help=f"one of {', '.join(ALL_STRATEGIES)} (default: default)",
    )
    parser.add_argument(
        "--no-queue", action="store_true", help="leave the Triage queue alone: choose every image with the strategy"
    )
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument(
        "--tasks",
        type=Path,
        metavar="FILE",
        help="also write the picks as Label Studio tasks, the model's predicted classes as "
        "pre-annotations (never read back as labels by import-labels)",
    )
    parser.add_argument(
        "--image-prefix",
        metavar="PREFIX",
        help="--tasks: data.image is PREFIX + the path (default: /data/local-files/?d= and the "
        "project root, for Label Studio with LOCAL_FILES_DOCUMENT_ROOT=/)",
    )
    parser.add_argument("--project", help="project name (default: the BANANA_PROJECT setting, 'default')")
    parser.add_argument("--backbone", help="backbone whose embeddings to use (default: the project's backbone)")
    parser.add_argument("--device", default="cpu", help="device for embedding new images: cpu, cuda, cuda:N or mps")
    add_wait_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    from core.features.extract import ExtractConfig
    from services.data_engine.headless_selection import picks_csv, picks_tasks, select_images  # imports torch
    from services.database import open_database
    from services.output_files import write_atomically

    settings = replace(settings, backbone=args.backbone or settings.backbone)  # None: the project's
    project = args.project or settings.project
    with open_database(settings) as db:
        chosen = select_images(
            db,
            settings,
            project=project,
            n=args.n,
            strategy=args.strategy,
            extract=ExtractConfig(device=args.device),
            show_progress=sys.stderr.isatty(),
            queue=not args.no_queue,
            wait_seconds=args.wait * 60,
            on_wait=say_waiting,
        )
    write_atomically(args.out, picks_csv(chosen))
    if args.tasks is not None:
        write_atomically(args.tasks, picks_tasks(chosen, image_prefix=args.image_prefix))
    model = (
        f"model version {chosen.model_version_id}"
        if chosen.model_version_id is not None
        else "no model yet (fewer than two classes labeled)"
    )
    queued = sum(pick.source == "triage" for pick in chosen.picks)
    from_queue = f"{queued} from the Triage queue, " if queued else ""
    print(
        f"selected {len(chosen.picks)} of {chosen.n_unlabeled} unlabeled images ({from_queue}{chosen.strategy}; {model}; "
        f"{chosen.n_labeled} labels; {chosen.embedded_now} images embedded now) -> {args.out}, "
        f"selection run {chosen.selection_run_id}" + (f"; Label Studio tasks -> {args.tasks}" if args.tasks else "")
    )
    if chosen.model_error:
        print(
            f"warning: the retrain on the current labels failed ({chosen.model_error}); "
            "the newest stored model, if any, scored the images",
            file=sys.stderr,
        )
    return 0
