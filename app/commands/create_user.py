"""``create-user`` and ``set-password``: manage accounts from a terminal (headless setups, a lost admin password)."""

from __future__ import annotations

import argparse
import getpass
import sys

from services.accounts.accounts import create_account, set_password
from services.config import Settings
from services.database import open_database
from services.errors import UserError
from storage.models import Role


def register(subparsers: argparse._SubParsersAction) -> None:
    create = subparsers.add_parser(
        "create-user",
        help="create an account (admin, reviewer or annotator)",
        description=(
            "Create an account that signs in to the app. The password is asked for twice on the terminal, "
            "or read from the first line of standard input with --password-stdin. With --email and no "
            "password the account signs in only through the OIDC provider configured in "
            ".streamlit/secrets.toml. A name that labeling recorded before becomes this account."
        ),
    )
    create.add_argument("name", metavar="NAME", help="the account's name, recorded with every label it gives")
    create.add_argument(
        "--role",
        choices=[role.value for role in Role],
        default=Role.ANNOTATOR.value,
        help="admin: everything; reviewer: labels and reviews; annotator: labels (default)",
    )
    create.add_argument("--email", help="email the OIDC provider reports for this person (optional)")
    how = create.add_mutually_exclusive_group()
    how.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    how.add_argument(
        "--no-password", action="store_true", help="no password: sign in through OIDC only (needs --email)"
    )
    create.set_defaults(run=run_create)

    reset = subparsers.add_parser(
        "set-password",
        help="set an account's password",
        description="Set the password of an existing account, for example an admin who lost theirs.",
    )
    reset.add_argument("name", metavar="NAME", help="the account's name")
    reset.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    reset.set_defaults(run=run_set_password)


def _read_password(args: argparse.Namespace) -> str | None:
    if getattr(args, "no_password", False):
        return None
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != password:
        raise UserError("the two passwords differ; run the command again")
    return password


def run_create(args: argparse.Namespace, settings: Settings) -> int:
    password = _read_password(args)
    with open_database(settings) as db:
        account = create_account(db, name=args.name, role=args.role, password=password, email=args.email, by=None)
    print(
        f"created {account.role.value} account {account.name!r}"
        + (f" (OIDC email {account.email})" if account.email else "")
    )
    return 0


def run_set_password(args: argparse.Namespace, settings: Settings) -> int:
    password = _read_password(args)
    with open_database(settings) as db:
        set_password(db, name=args.name, password=password, by=None)
    print(f"set the password of {args.name.strip()!r}")
    return 0
