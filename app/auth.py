"""Who is signed in to this browser session: a local account, or an OIDC identity mapped to one.

The session remembers only the account's id (and a password sign-in's token); every run loads
the account again, so a disabled account, a changed role, a new password or a sign-out in
another tab takes effect at the user's next click. A password sign-in is also remembered by
the browser (a cookie holding a token of :mod:`services.accounts.remembered_sign_ins`), so a reload or
a new tab stays signed in. Streamlit can read cookies but not set them, so a small script
sets it; the cookie is therefore not HttpOnly, which the app's escaping of every
user-supplied text guards.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

import streamlit as st

from app.resources import database
from services.accounts.accounts import Account, account_for_email
from services.accounts.remembered_sign_ins import (
    REMEMBER_FOR,
    TOKEN_PATTERN,
    account_for_token,
    forget,
    remember,
    session_account,
)
from services.errors import UserError
from storage.models import Role

ACCOUNT_ID = "account_id"
ACCOUNT = "account"
OIDC_REFUSED = "oidc_refused"
SIGN_IN_TOKEN = "sign_in_token"
SIGN_IN_COOKIE = "banana_sign_in"


def oidc_providers(secrets: Mapping) -> list[str | None]:
    """Providers in Streamlit's ``[auth]`` secrets: None for one set directly in ``[auth]``,
    the name for each ``[auth.NAME]`` table; empty when OIDC is not configured."""
    auth = secrets.get("auth")
    if not isinstance(auth, Mapping):
        return []
    named = [name for name, value in auth.items() if isinstance(value, Mapping) and "client_id" in value]
    return ([None] if "client_id" in auth else []) + named


def configured_oidc_providers() -> list[str | None]:
    """The OIDC providers of this server's ``.streamlit/secrets.toml`` (none without the file)."""
    if not st.secrets.load_if_toml_exists():
        return []
    return oidc_providers(st.secrets)


def oidc_library_installed() -> bool:
    """Whether Authlib, which ``st.login`` needs, is installed (``pip install 'streamlit[auth]'``)."""
    return importlib.util.find_spec("authlib") is not None


def current_account() -> Account | None:
    """The signed-in account, loaded fresh; None (and signed out) when there is none, it is
    disabled, or the session's sign-in token was revoked (a sign-out elsewhere, a new password)."""
    account_id = st.session_state.get(ACCOUNT_ID)
    if account_id is None and getattr(st.user, "is_logged_in", False):
        account_id = _map_oidc_identity()
    if account_id is None:
        account_id = _remembered_account()
    account = (
        session_account(database(), account_id, st.session_state.get(SIGN_IN_TOKEN)) if account_id is not None else None
    )
    if account is None:
        for key in (ACCOUNT_ID, ACCOUNT, SIGN_IN_TOKEN):  # no token left: the browser's cookie is expired
            st.session_state.pop(key, None)
        return None
    st.session_state[ACCOUNT] = account
    return account


def _map_oidc_identity() -> int | None:
    try:
        account = account_for_email(database(), getattr(st.user, "email", None))
    except UserError as error:
        st.session_state[OIDC_REFUSED] = str(error)
        return None
    st.session_state.pop(OIDC_REFUSED, None)
    st.session_state[ACCOUNT_ID] = account.id
    return account.id


def _remembered_account() -> int | None:
    """The account the browser's sign-in cookie names, if its token is still good."""
    token = _browser_cookie()
    account = account_for_token(database(), token)
    if account is None:
        return None
    st.session_state[ACCOUNT_ID] = account.id
    st.session_state[SIGN_IN_TOKEN] = token
    return account.id


def _browser_cookie() -> str | None:
    """The sign-in cookie the browser sent when this session began (None without one, and
    in AppTest, whose context has no real cookies)."""
    value = st.context.cookies.get(SIGN_IN_COOKIE)
    return value if isinstance(value, str) else None


def sign_in(account: Account) -> None:
    """Remember ``account`` for this browser session, and in the browser across reloads."""
    st.session_state[ACCOUNT_ID] = account.id
    st.session_state[ACCOUNT] = account
    st.session_state[SIGN_IN_TOKEN] = remember(database(), account.id)


def keep_signed_in_after_new_password(account: Account) -> None:
    """A new password revokes every remembered sign-in of the account, this session's too: give
    this session (and its browser's cookie) a new token, so only the other browsers are signed out."""
    if st.session_state.get(SIGN_IN_TOKEN) is not None:
        st.session_state[SIGN_IN_TOKEN] = remember(database(), account.id)
        st.html(sign_in_cookie_script(), unsafe_allow_javascript=True)


def sign_out() -> None:
    """Forget the account (and the provider's sign-in) and everything this session held for it."""
    labeling = st.session_state.get("labeling_session")
    if labeling is not None:
        labeling.close()
    forget(database(), st.session_state.get(SIGN_IN_TOKEN))
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    if getattr(st.user, "is_logged_in", False):
        st.logout()


def sign_in_cookie_script() -> str | None:
    """A script that makes the browser's sign-in cookie match this session: set to the
    session's token while signed in with one, expired when the browser holds a cookie this
    session does not (signed out, revoked); None when nothing needs to change."""
    token = st.session_state.get(SIGN_IN_TOKEN)
    held = _browser_cookie()
    if token is not None and TOKEN_PATTERN.fullmatch(token):
        value, max_age = token, int(REMEMBER_FOR.total_seconds())
    elif held is not None:
        value, max_age = "", 0
    else:
        return None
    return (
        "<script>document.cookie = '"
        + SIGN_IN_COOKIE
        + "="
        + value
        + "; path=/; max-age="
        + str(max_age)
        + "; SameSite=Strict' + (location.protocol === 'https:' ? '; Secure' : '');</script>"
    )


def require(role: Role) -> Account:
    """The signed-in account if it has ``role`` or above; otherwise say why and stop the page.

    ``st.navigation`` already leaves out the pages an account may not see. Every page still
    starts with this call because Streamlit runs a file of ``app/pages/`` by its URL without
    ``app/main.py`` (its older multipage mode) until ``st.navigation`` has run once in the
    server process, and AppTest does so on every run.
    """
    account = current_account()
    if account is None:
        st.warning("Sign in first: open the app's start page.", icon=":material/login:")
        st.stop()
    if not account.can(role):
        st.error(f"This page is for accounts with the {role.value} role or above.", icon=":material/block:")
        st.stop()
    return account
