"""``backup``: copy the SQLite database to a file while the app keeps running."""

from __future__ import annotations

import argparse
from pathlib import Path

from services.config import Settings
from services.transfer.backup import backup_database


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "backup",
        help="copy the SQLite database to a file, safely while the app keeps writing",
        description=(
            "Copy the SQLite database (the database_url setting) to FILE as one consistent "
            "snapshot, while the app and other commands go on writing. The copy is checked "
            "with PRAGMA integrity_check and then renamed into place, so FILE is either the "
            "whole new backup or left as it was. To restore, stop the app and point "
            "database_url at the copy, or copy it over the database file after removing "
            "that file's -wal and -shm companions. For PostgreSQL use pg_dump."
        ),
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="backup file to write (replaced if it exists)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    report = backup_database(settings, args.out)
    print(
        f"backed up {report.source} to {report.path}: {report.size_bytes} bytes, "
        f"schema revision {', '.join(report.revisions)}, integrity_check ok"
    )
    return 0
