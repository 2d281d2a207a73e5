"""``triage``: a report on a batch of new images: near-failures, novel images, near-copies."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from app.commands.embed import add_wait_option, say_waiting
from services.config import Settings

if TYPE_CHECKING:  # the services import numpy and torch: --help stays fast
    from services.data_engine.triage import TriageReport
    from services.database import Database
    from services.labeling.priority_asks import QueueResult, QueueView
    from storage.labels.priority_queries import PendingPick
    from storage.teams.lease_queries import LeaseHolder

EVERY_WAITING_IMAGE = sys.maxsize  # waiting_queue's ``first``: --show-queue lists the whole queue


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "triage",
        help="report near-failures, novel images and near-copies in a batch of new images",
        description=(
            "Triage the project's unlabeled images under --batch FOLDER and/or ingested since --since TIME "
            "(every unlabeled image when neither is given). Images not embedded yet are embedded first and "
            "added to the similarity index. Writes one CSV row per image, near-failures (lowest margin) "
            "first, then novel images, then near-copies of labeled images with the label they would get; "
            "prints a short summary. Ingest the new folder first. With --label-next, the near-failures are "
            "also queued to be asked next on the Label page, lowest margin first. --clear-queue withdraws every "
            "image waiting in that queue (labeled images and what was asked stay recorded); without --out it "
            "does only that. --show-queue lists the images waiting in that queue, in the order they will be "
            "asked (after --clear-queue and --label-next, when given)."
        ),
    )
    parser.add_argument(
        "--batch", metavar="FOLDER", help="folder of the batch, relative to the project root or a path under it"
    )
    parser.add_argument(
        "--since", metavar="TIME", help="images ingested at or after this UTC time (2026-11-26 or 2026-11-26T14:30)"
    )
    parser.add_argument("--out", type=Path, help="CSV file to write (required unless --clear-queue or --show-queue)")
    parser.add_argument("--project", help="project name (default: the BANANA_PROJECT setting, 'default')")
    parser.add_argument("--backbone", help="backbone whose embeddings to use (default: the project's backbone)")
    parser.add_argument(
        "--near-failure-margin", type=float, help="margin below which an image is a near-failure (default: 0.2)"
    )
    parser.add_argument(
        "--near-copy", type=float, help="cosine similarity from which an image is a near-copy (default: 0.95)"
    )
    parser.add_argument(
        "--workers", type=int, help="image-decoding processes for embedding new images (default: as `embed`)"
    )
    parser.add_argument("--top", type=int, default=5, help="images of each kind in the summary (default: 5)")
    parser.add_argument(
        "--label-next",
        action="store_true",
        help="queue the near-failures to be asked next on the Label page, lowest margin first "
        "(before the strategy's own picks; images queued already are not queued again)",
    )
    parser.add_argument(
        "--clear-queue",
        action="store_true",
        help='first withdraw every image waiting in the "Label these next" queue and print how many; '
        "with --out, then triage (and with --label-next, queue afresh)",
    )
    parser.add_argument(
        "--show-queue",
        action="store_true",
        help='last, list every image waiting in the "Label these next" queue in ask order (path, '
        "triage margin, when queued and from which batch, who holds it now) and how many wait",
    )
    add_wait_option(parser)
    parser.set_defaults(run=run, usage_error=parser.error)  # exit status 2, like argparse's own errors


def run(args: argparse.Namespace, settings: Settings) -> int:
    """--clear-queue first, then the report (and --label-next) with --out, then --show-queue last,
    so that each step sees what the earlier ones did to the queue."""
    if args.out is None and not (args.clear_queue or args.show_queue):
        args.usage_error("the following arguments are required: --out (unless --clear-queue or --show-queue)")
    if args.out is None and args.label_next:
        args.usage_error("--label-next needs --out: it queues from the report")
    from services.data_engine.triage import clear_label_next, clear_queue_message, waiting_queue
    from services.database import open_database

    since = _since(args)  # a malformed --since fails before any work
    project = args.project or settings.project
    report = queued = view = None
    with open_database(settings) as db:
        if args.clear_queue:
            print(clear_queue_message(clear_label_next(db, project=project)))
        if args.out is not None:
            report, queued = _triage(db, settings, args, project=project, since=since)
        if args.show_queue:
            view = waiting_queue(db, project=project, first=EVERY_WAITING_IMAGE)
    if report is not None:
        _print_report(report, queued, args)
    if view is not None:
        for line in queue_lines(view, project=project):
            print(line)
    return 0


def _since(args: argparse.Namespace) -> datetime | None:
    from services.data_engine.triage import parse_since

    return parse_since(args.since) if args.since else None


def _triage(
    db: Database, settings: Settings, args: argparse.Namespace, *, project: str, since: datetime | None
) -> tuple[TriageReport, QueueResult | None]:
    """Triage the batch; with --label-next, queue its near-failures. Returns (report, QueueResult or None)."""
    from core.features.extract import ExtractConfig
    from core.quality.triage import TriageConfig
    from services.data_engine.triage import label_next, near_failures, triage_batch

    given = {"near_failure_margin": args.near_failure_margin, "near_copy_similarity": args.near_copy}
    config = TriageConfig(**{name: value for name, value in given.items() if value is not None})
    report = triage_batch(
        db,
        settings,
        project=project,
        backbone=args.backbone,
        folder=args.batch,
        since=since,
        config=config,
        extract_config=ExtractConfig(**({} if args.workers is None else {"num_workers": args.workers})),
        wait_seconds=args.wait * 60,
        on_wait=say_waiting,
    )
    queued = (
        label_next(db, project=project, rows=near_failures(report), batch=report.batch) if args.label_next else None
    )
    return report, queued


def _print_report(report: TriageReport, queued: QueueResult | None, args: argparse.Namespace) -> None:
    """Write the CSV and print the summary (and what --label-next queued)."""
    from services.data_engine.triage import label_next_message, summary_lines, write_csv

    write_csv(report, args.out)
    for line in summary_lines(report, top=args.top):
        print(line)
    print(f"report: {args.out} ({len(report.rows)} rows)")
    if queued is not None:
        print(label_next_message(queued, what="near-failure"))


def queue_lines(view: QueueView, *, project: str) -> list[str]:
    """--show-queue's output for a :class:`~services.labeling.priority_asks.QueueView`: one line per waiting
    image in ask order, then how many wait; one line saying so when none wait."""
    if not view.waiting:
        return [
            f'The "Label these next" queue of project {project!r} is empty: no images wait. Queue a '
            "report's near-failures with: python -m app.cli triage --out report.csv --label-next"
        ]
    lines = [
        f"{rank}. {_queued_image(pick, view.held.get(pick.item_id))}" for rank, pick in enumerate(view.first, start=1)
    ]
    noun = "image waits" if view.waiting == 1 else "images wait"
    return [
        *lines,
        f'{view.waiting} {noun} in the "Label these next" queue of project {project!r}, '
        "asked on the Label page before the strategy's own picks, in this order.",
    ]


def _queued_image(pick: PendingPick, holder: LeaseHolder | None) -> str:
    """One waiting image: its path and item id, then what is known of it."""
    notes = []
    margin = pick.score_parts.get("triage_margin")
    if margin is not None:  # the report's margin when queued (how near another answer); novel images etc. have none
        notes.append(f"margin {margin:.2f}")
    if pick.queued_at is not None:
        notes.append(f"queued {_utc(pick.queued_at)}" + (f" from the triage of {pick.batch}" if pick.batch else ""))
    # Leased images still wait (until labeled): the holder says why another annotator is not asked it.
    notes.append(f"held by {holder.annotator} until {_utc(holder.expires_at)}" if holder is not None else "not held")
    return f"{pick.path} (item {pick.item_id}): " + "; ".join(notes)


def _utc(moment: datetime) -> str:
    """A stored time as the README writes times: UTC, to the minute."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
