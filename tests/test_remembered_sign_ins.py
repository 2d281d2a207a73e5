"""Remembered sign-ins on SQLite and PostgreSQL: a token signs its account in until it
expires, is revoked by signing out or a password change, or the account is disabled; an open
session holding a token ends with it."""

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from services.accounts.accounts import create_account, create_first_admin, set_disabled, set_password
from services.accounts.remembered_sign_ins import account_for_token, forget, remember, session_account
from storage.accounts.sign_in_models import RememberedSignIn
from storage.types import utc_now

pytestmark = pytest.mark.slow


def test_a_token_signs_its_account_in_and_only_its_digest_is_stored(backend_db):
    admin = create_first_admin(backend_db, name="ada", password="correct horse")
    token = remember(backend_db, admin.id)
    assert account_for_token(backend_db, token).name == "ada"
    with backend_db.reading() as session:
        stored = session.scalars(select(RememberedSignIn.token_sha256)).all()
    assert len(stored) == 1 and token not in stored[0] and len(stored[0]) == 64
    assert account_for_token(backend_db, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert account_for_token(backend_db, None) is None
    assert account_for_token(backend_db, "'; DROP TABLE annotator; --") is None


def test_sign_out_revokes_one_browser_and_a_new_password_revokes_them_all(backend_db):
    create_first_admin(backend_db, name="ada", password="correct horse")
    bob = create_account(backend_db, name="bob", role="annotator", password="battery staple", by="ada")
    laptop, phone, other = remember(backend_db, bob.id), remember(backend_db, bob.id), remember(backend_db, bob.id)
    forget(backend_db, laptop)
    assert account_for_token(backend_db, laptop) is None
    assert account_for_token(backend_db, phone).name == "bob"
    set_password(backend_db, name="bob", password="a new password", by="bob")
    assert account_for_token(backend_db, phone) is None and account_for_token(backend_db, other) is None
    assert account_for_token(backend_db, remember(backend_db, bob.id)).name == "bob"  # signing in again works


def test_expired_tokens_and_disabled_accounts_sign_nobody_in(backend_db):
    create_first_admin(backend_db, name="ada", password="correct horse")
    bob = create_account(backend_db, name="bob", role="annotator", password="battery staple", by="ada")
    token = remember(backend_db, bob.id)
    set_disabled(backend_db, name="bob", disabled=True, by="ada")
    assert account_for_token(backend_db, token) is None
    set_disabled(backend_db, name="bob", disabled=False, by="ada")
    assert account_for_token(backend_db, token).name == "bob"
    with backend_db.writing() as session:
        session.execute(update(RememberedSignIn).values(expires_at=utc_now() - timedelta(seconds=1)))
    assert account_for_token(backend_db, token) is None


def test_an_open_session_ends_with_its_token_and_a_tokenless_one_with_its_account(backend_db):
    ada = create_first_admin(backend_db, name="ada", password="correct horse")
    bob = create_account(backend_db, name="bob", role="annotator", password="battery staple", by="ada")
    browser, other_browser = remember(backend_db, bob.id), remember(backend_db, bob.id)
    assert session_account(backend_db, bob.id, browser).name == "bob"
    assert session_account(backend_db, ada.id, browser) is None  # a token signs in its own account only

    forget(backend_db, browser)  # signed out in another tab of this browser (they share the token)
    assert session_account(backend_db, bob.id, browser) is None
    assert session_account(backend_db, bob.id, other_browser).name == "bob"
    set_password(backend_db, name="bob", password="a new password", by="ada")
    assert session_account(backend_db, bob.id, other_browser) is None

    assert session_account(backend_db, bob.id, None).name == "bob"  # single sign-on: no token
    set_disabled(backend_db, name="bob", disabled=True, by="ada")
    assert session_account(backend_db, bob.id, None) is None
    assert session_account(backend_db, 10_000, None) is None
