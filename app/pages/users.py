"""Users (admin): create accounts, reset passwords, change roles and emails, disable and enable."""

import streamlit as st

from app.auth import require
from app.resources import database
from app.safe_text import escape_markdown
from app.user_state import annotator
from services.accounts.accounts import (
    MIN_PASSWORD_LENGTH,
    change_role,
    create_account,
    list_accounts,
    set_disabled,
    set_email,
    set_password,
)
from services.errors import UserError
from storage.models import Role

require(Role.ADMIN)  # first: see app/auth.py

ROLES = [role.value for role in Role]

st.title("Users")
st.caption(
    "Roles form a ladder: an annotator labels; a reviewer also works the review queue; an admin also "
    "manages classes, settings, export/import and accounts. Names that labeling recorded before "
    "accounts existed can sign in once you set a password for them."
)
db, me = database(), annotator()


def _do(action, success: str, **arguments) -> None:
    try:
        action(db, by=me, **arguments)
    except UserError as error:
        st.error(escape_markdown(str(error)))
    else:
        st.session_state["users-message"] = success
        st.rerun()  # the table above shows the change


message = st.session_state.pop("users-message", None)
if message:
    st.success(escape_markdown(message))
accounts = list_accounts(db)
# A dataframe shows names as plain text, never as markup.
st.dataframe(
    [
        {
            "name": a.name,
            "role": a.role.value,
            "email": a.email or "",
            "password": a.has_password,
            "disabled": a.disabled,
        }
        for a in accounts
    ],
    hide_index=True,
    width="stretch",
)

st.header("Add an account")
with st.form("add-account", clear_on_submit=True):
    name = st.text_input("Name", max_chars=200, help="Recorded with every label the account gives.")
    role = st.selectbox("Role", ROLES, index=ROLES.index(Role.ANNOTATOR.value))
    password = st.text_input(
        "Password",
        type="password",
        max_chars=1024,
        help=f"At least {MIN_PASSWORD_LENGTH} characters; leave empty for an OIDC-only account.",
    )
    email = st.text_input("Email for single sign-on (optional)", max_chars=320)
    if st.form_submit_button("Add the account", type="primary"):
        _do(
            create_account,
            f"Added {name.strip()} ({role}).",
            name=name,
            role=role,
            password=password or None,
            email=email or None,
        )

if accounts:
    st.header("Change an account")
    names = [a.name for a in accounts]
    chosen = st.selectbox("Account", names, key="users-chosen")
    current = accounts[names.index(chosen)]
    with st.form("reset-password", clear_on_submit=True):
        new_password = st.text_input("New password", type="password", max_chars=1024)
        if st.form_submit_button("Set the password"):
            _do(set_password, f"Set a new password for {chosen}.", name=chosen, password=new_password)
    with st.form("change-role"):
        new_role = st.selectbox("Role", ROLES, index=ROLES.index(current.role.value))
        if st.form_submit_button("Change the role"):
            _do(change_role, f"{chosen} is now {new_role}.", name=chosen, role=new_role)
    with st.form("change-email"):
        new_email = st.text_input("Email for single sign-on", value=current.email or "", max_chars=320)
        if st.form_submit_button("Set the email"):
            _do(set_email, f"Set the email of {chosen}.", name=chosen, email=new_email or None)
    if current.disabled:
        if st.button("Enable the account"):
            _do(set_disabled, f"Enabled {chosen}.", name=chosen, disabled=False)
    elif st.button("Disable the account", help="It can no longer sign in; its labels are kept."):
        _do(set_disabled, f"Disabled {chosen}; it is signed out at its next click.", name=chosen, disabled=True)
