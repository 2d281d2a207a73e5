"""The sidebar form where a signed-in account changes its own password."""

from __future__ import annotations

import streamlit as st

from app.auth import keep_signed_in_after_new_password
from app.resources import database
from app.safe_text import escape_markdown
from services.accounts.accounts import Account, authenticate, set_password
from services.errors import UserError


def own_password_form(account: Account) -> None:
    """Current password, new one twice; shown only to accounts that sign in with a password."""
    if not account.has_password:
        return
    with st.popover("Change your password", icon=":material/password:"):
        with st.form("own-password", clear_on_submit=True, border=False):
            current = st.text_input("Current password", type="password", max_chars=1024)
            new = st.text_input("New password", type="password", max_chars=1024)
            repeat = st.text_input("New password again", type="password", max_chars=1024)
            if not st.form_submit_button("Change the password"):
                return
        if new != repeat:
            st.error("The two new passwords differ; type the same password twice.")
            return
        try:
            authenticate(database(), name=account.name, password=current)
            set_password(database(), name=account.name, password=new, by=account.name)
        except UserError as error:
            st.error(escape_markdown(str(error)))
        else:
            keep_signed_in_after_new_password(account)
            st.success("Your password is changed; other browsers signed in with the old one are signed out.")
