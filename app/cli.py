"""Command line: ``python -m app.cli SUBCOMMAND``.

To add a subcommand, write a module in ``app/commands/`` with
``register(subparsers)``, which adds a parser and sets ``run(args, settings) -> int``
as its default, then list the module in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from app.commands import backbone as backbone_command
from app.commands import (
    backup,
    create_user,
    embed,
    export,
    export_embeddings,
    fetch_backbone,
    import_labels,
    ingest,
    label_issues,
    restore,
    similar,
    simulate,
    ssl_train,
    triage,
)
from app.commands import select as select_command
from services.config import load_settings
from services.errors import UserError

COMMANDS = (
    ingest,
    embed,
    similar,
    export_embeddings,
    ssl_train,
    simulate,
    select_command,
    import_labels,
    export,
    backup,
    restore,
    triage,
    label_issues,
    create_user,
    fetch_backbone,
    backbone_command,
)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="python -m app.cli",
        description="banana: active-learning image labeling assistant.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; return 0 on success, 1 on a reported failure (2 for bad usage)."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args, load_settings())
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
    except SQLAlchemyError as error:
        print(f"error: database problem: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
