"""Remembered sign-ins: a browser that signed in with a password stays signed in across
reloads for :data:`REMEMBER_FOR` (see :mod:`storage.accounts.sign_in_models`).

The token is 32 random bytes (URL-safe base64); only its SHA-256 is stored. Signing out
revokes the browser's token; a password change revokes every token of the account; a
disabled account's tokens sign nobody in. An open page is checked at every action
(:func:`session_account`), so a revoked token signs it out without a reload.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from sqlalchemy import select, update

from services.accounts.accounts import Account, get_account
from services.database import Database
from storage.accounts.sign_in_models import RememberedSignIn
from storage.types import utc_now

REMEMBER_FOR = timedelta(days=14)
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")  # what secrets.token_urlsafe(32) makes


def remember(db: Database, account_id: int) -> str:
    """A new token that signs this account in until it expires or is revoked."""
    token = secrets.token_urlsafe(32)
    with db.writing() as session:
        session.add(
            RememberedSignIn(token_sha256=_digest(token), annotator_id=account_id, expires_at=utc_now() + REMEMBER_FOR)
        )
    return token


def account_for_token(db: Database, token: str | None) -> Account | None:
    """The enabled account a valid, unexpired, unrevoked token signs in; None otherwise."""
    if not token or not TOKEN_PATTERN.fullmatch(token):
        return None
    with db.reading() as session:
        row = session.scalar(select(RememberedSignIn).where(RememberedSignIn.token_sha256 == _digest(token)))
        if row is None or row.revoked_at is not None or row.expires_at <= utc_now():
            return None
        account_id = row.annotator_id
    account = get_account(db, account_id)
    return account if account is not None and not account.disabled else None


def session_account(db: Database, account_id: int, token: str | None) -> Account | None:
    """The enabled account a browser session is still signed in as, checked at each of its actions; None otherwise.

    A password sign-in holds its token (``token``): the session stays signed in only while the
    token is good, so signing out in another tab (the tabs of a browser share its cookie) or a
    new password ends it at its next action, as disabling the account does. A session without
    a token (single sign-on) stays signed in while the account is enabled.
    """
    if token is None:
        account = get_account(db, account_id)
        return account if account is not None and not account.disabled else None
    account = account_for_token(db, token)
    return account if account is not None and account.id == account_id else None


def forget(db: Database, token: str | None) -> None:
    """Revoke one token (signing out); unknown tokens are ignored."""
    if token:
        with db.writing() as session:
            session.execute(
                update(RememberedSignIn)
                .where(RememberedSignIn.token_sha256 == _digest(token), RememberedSignIn.revoked_at.is_(None))
                .values(revoked_at=utc_now())
            )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
