"""``ingest``: add images from a folder or a list file to a project."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.config import Settings
from services.database import open_database
from services.ingest.ingest import ingest
from services.projects import ensure_project, get_project, list_projects, project_counts


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
    parser.add_argument(
        "--if-new",
        dest="if_new",
        action="store_true",
        help="add the images only if the project does not exist yet; an existing one is left as it is "
        "(how `make run` adds the sample images)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--multi-label",
        dest="multi_label",
        action="store_const",
        const=True,
        help="a new project is multi-label (an image may get several classes); an existing one must be multi-label",
    )
    mode.add_argument(
        "--single-label",
        dest="multi_label",
        action="store_const",
        const=False,
        help="an existing project must be single-label (the default for a new project)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    project_name = args.project or settings.project
    with open_database(settings) as db:
        if args.if_new and project_name in {project.name for project in list_projects(db)}:
            project = get_project(db, project_name)
            print(f"project {project.name!r} (root {project.root_path}) exists; left as it is, without {args.path}")
            return 0
        if args.multi_label is not None and args.path.exists():
            # Created (or checked) here with the asked mode; ingest then finds it. A missing PATH is
            # left to ingest, which says so. An existing project of the other mode is an error.
            ensure_project(
                db,
                name=project_name,
                root=args.root,
                root_if_new=args.path if args.path.is_dir() else args.path.parent,
                multi_label=args.multi_label,
            )
        report = ingest(
            db, settings, source=args.path, project=project_name, root=args.root, show_progress=sys.stderr.isatty()
        )
        project = get_project(db, project_name)
        counts = project_counts(db, project)
    mode = "multi-label" if project.multi_label else "single-label"
    print(f"project {project.name!r} (root {project.root_path}, {mode})")
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
    print(
        f"project now holds {counts.ok} images, {counts.error} rejected files, {counts.duplicate_files} duplicate files"
    )
    return 0
