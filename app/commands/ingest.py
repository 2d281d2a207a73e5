"""``ingest``: add images from a folder or a list file to a project."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.config import Settings
from services.database import open_database
from services.ingest import ingest
from services.projects import get_project, project_counts


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="add images from a folder or a list file to a project",
        description=(
            "Add every JPEG, PNG, WEBP, BMP, GIF or TIFF image under PATH (recursively), or listed "
            "one path per line in the text file PATH, to a project. Files already ingested are "
            "skipped; identical content is stored once; each bad file is recorded and listed with "
            "the reason, and the rest goes on. Exits 0 when the run completes, even if some files "
            "were rejected, and 1 when it cannot run."
        ),
    )
    parser.add_argument("path", type=Path, metavar="PATH", help="folder of images, or a text file listing image paths")
    parser.add_argument("--project", help="project name (default: the BANANA_PROJECT setting, 'default')")
    parser.add_argument(
        "--root",
        type=Path,
        help="root folder of a new project; item paths are stored relative to it (default: PATH, or a list file's folder)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    project_name = args.project or settings.project
    with open_database(settings) as db:
        report = ingest(
            db, settings, source=args.path, project=project_name, root=args.root, show_progress=sys.stderr.isatty()
        )
        project = get_project(db, project_name)
        counts = project_counts(db, project)
    print(f"project {project.name!r} (root {project.root_path})")
    print(f"added: {report.added}")
    print(f"skipped-known: {report.skipped_known}")
    print(f"duplicates: {report.duplicates}")
    print(f"errors: {len(report.errors)}")
    for message in report.errors:
        print(f"  {message}")
    if report.changed:
        print(f"changed since ingest, kept as first recorded: {len(report.changed)}")
        for path in report.changed:
            print(f"  {path}")
    print(f"project now holds {counts.ok} images, {counts.error} rejected files, {counts.duplicate_files} duplicate files")
    return 0
