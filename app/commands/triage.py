"""``triage``: a report on a batch of new images: near-failures, novel images, near-copies."""

from __future__ import annotations

import argparse
from pathlib import Path

from services.config import Settings


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
            "does only that."
        ),
    )
    parser.add_argument("--batch", metavar="FOLDER", help="folder of the batch, relative to the project root or a path under it")
    parser.add_argument("--since", metavar="TIME", help="images ingested at or after this UTC time (2026-11-26 or 2026-11-26T14:30)")
    parser.add_argument("--out", type=Path, help="CSV file to write (required unless --clear-queue)")
    parser.add_argument("--project", help="project name (default: the BANANA_PROJECT setting, 'default')")
    parser.add_argument("--backbone", help="backbone whose embeddings to use (default: the BANANA_BACKBONE setting)")
    parser.add_argument("--near-failure-margin", type=float, help="margin below which an image is a near-failure (default: 0.2)")
    parser.add_argument("--near-copy", type=float, help="cosine similarity from which an image is a near-copy (default: 0.95)")
    parser.add_argument("--workers", type=int, help="image-decoding processes for embedding new images (default: as `embed`)")
    parser.add_argument("--top", type=int, default=5, help="images of each kind in the summary (default: 5)")
    parser.add_argument("--label-next", action="store_true",
                        help="queue the near-failures to be asked next on the Label page, lowest margin first "
                             "(before the strategy's own picks; images queued already are not queued again)")
    parser.add_argument("--clear-queue", action="store_true",
                        help="first withdraw every image waiting in the \"Label these next\" queue and print how many; "
                             "with --out, then triage (and with --label-next, queue afresh)")
    parser.set_defaults(run=run, usage_error=parser.error)  # exit status 2, like argparse's own errors


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.out is None and not args.clear_queue:
        args.usage_error("the following arguments are required: --out (unless --clear-queue)")
    if args.out is None and args.label_next:
        args.usage_error("--label-next needs --out: it queues from the report")
    from core.extract import ExtractConfig
    from core.triage import TriageConfig
    from services.database import open_database
    from services.triage import (clear_label_next, clear_queue_message, label_next, label_next_message, near_failures,
                                 parse_since, summary_lines, triage_batch, write_csv)

    given = {"near_failure_margin": args.near_failure_margin, "near_copy_similarity": args.near_copy}
    config = TriageConfig(**{name: value for name, value in given.items() if value is not None})
    since = parse_since(args.since) if args.since else None
    project = args.project or settings.project
    with open_database(settings) as db:
        if args.clear_queue:
            print(clear_queue_message(clear_label_next(db, project=project)))
        if args.out is None:
            return 0
        report = triage_batch(db, settings, project=project,
                              backbone=args.backbone or settings.backbone, folder=args.batch, since=since, config=config,
                              extract_config=ExtractConfig(**({} if args.workers is None else {"num_workers": args.workers})))
        queued = (label_next(db, project=project, rows=near_failures(report), batch=report.batch)
                  if args.label_next else None)
    write_csv(report, args.out)
    for line in summary_lines(report, top=args.top):
        print(line)
    print(f"report: {args.out} ({len(report.rows)} rows)")
    if queued is not None:
        print(label_next_message(queued, what="near-failure"))
    return 0
