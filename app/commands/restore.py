"""``restore``: make the SQLite database hold a backup, keeping the database as it was."""

from __future__ import annotations

import argparse
from pathlib import Path

from services.config import Settings
from services.transfer.backup import restore_database


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "restore",
        help="restore the SQLite database from a backup file (stop the app first)",
        description=(
            "Check FILE (a file that `backup --out FILE` wrote: PRAGMA integrity_check, a banana "
            "schema), save the database as it is now beside it as "
            "<name>.before-restore-<UTC time>.db, then copy FILE into the database with SQLite's "
            "online backup API. Nothing is lost: to undo, restore the saved file. Stop the app "
            "first; a running app keeps its labels in memory. For PostgreSQL use pg_restore."
        ),
    )
    parser.add_argument(
        "--from", dest="backup", type=Path, required=True, metavar="FILE", help="backup file to restore"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    report = restore_database(settings, args.backup)
    kept = f"; the database as it was is saved at {report.previous}" if report.previous else ""
    print(
        f"restored {report.backup} into {report.path} (schema revision {', '.join(report.revisions)}){kept}. "
        "Start the app again to use it."
    )
    return 0
