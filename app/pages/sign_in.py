"""Sign-in: the only page a visitor who is not signed in sees.

On a database where no admin can sign in yet it offers to create the admin account, so
a fresh offline install works with no setup. With OIDC configured in
``.streamlit/secrets.toml`` it also offers the provider's sign-in.
"""

import getpass

import streamlit as st

from app.auth import OIDC_REFUSED, configured_oidc_providers, oidc_library_installed, sign_in
from app.resources import database
from app.safe_text import escape_markdown
from services.accounts.accounts import anyone_can_sign_in, authenticate, create_first_admin, first_admin_needed
from services.errors import UserError


def _default_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "admin"


def _first_admin_form() -> None:
    st.info(
        "No admin account yet. Create it now: the admin adds classes, changes settings, exports, "
        "and creates the accounts of annotators and reviewers.",
        icon=":material/person_add:",
    )
    with st.form("first-admin"):
        name = st.text_input("Admin name", value=_default_name(), max_chars=200)
        password = st.text_input("Password", type="password", max_chars=1024)
        repeat = st.text_input("Password again", type="password", max_chars=1024)
        if st.form_submit_button("Create the admin account", type="primary"):
            if password != repeat:
                st.error("The two passwords differ; type the same password twice.")
                return
            try:
                account = create_first_admin(database(), name=name, password=password)
            except UserError as error:
                st.error(escape_markdown(str(error)))
                return
            sign_in(account)
            st.rerun()


def _password_form() -> None:
    with st.form("sign-in"):
        name = st.text_input("Name", max_chars=200)
        password = st.text_input("Password", type="password", max_chars=1024)
        if st.form_submit_button("Sign in", type="primary"):
            try:
                account = authenticate(database(), name=name, password=password)
            except UserError as error:
                st.error(escape_markdown(str(error)))
                return
            sign_in(account)
            st.rerun()


st.title("Sign in to banana")
refused = st.session_state.get(OIDC_REFUSED)
if refused:
    st.error(escape_markdown(refused), icon=":material/block:")
    st.button("Sign out of the provider", on_click=st.logout)
if anyone_can_sign_in(database()):
    _password_form()
elif first_admin_needed(database()):
    _first_admin_form()
else:
    st.warning("Every account is disabled. Create an admin from a terminal on the server:")
    st.code("python -m app.cli create-user NAME --role admin", language="bash")
providers = configured_oidc_providers()
if providers and not oidc_library_installed():
    st.error(
        "Single sign-on is configured in .streamlit/secrets.toml, but its library is missing: "
        "run `pip install Authlib` (or `pip install 'streamlit[auth]'`) and restart the app."
    )
    providers = []
for provider in providers:
    st.button(
        f"Sign in with {escape_markdown(provider)}" if provider else "Sign in with your organisation",
        key=f"oidc-{provider}",
        on_click=st.login,
        args=(provider,),
        icon=":material/login:",
    )
