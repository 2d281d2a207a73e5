"""Per-user state (one browser session): chosen project, signed-in account, labeling session."""

from __future__ import annotations

import streamlit as st

from app.auth import ACCOUNT
from app.resources import settings
from services.accounts.accounts import Account
from services.engine.project_engine import ProjectEngine
from services.labeling.session import LabelingSession
from storage.models import Role


def chosen_project() -> str:
    """The project picked in the sidebar, else the configured one."""
    return st.session_state.get("project") or settings().project


def account() -> Account:
    """The signed-in account; the router (app/main.py) runs pages only for one."""
    signed_in = st.session_state.get(ACCOUNT)
    if signed_in is None:
        raise RuntimeError("no account is signed in; pages run only after app/main.py has signed one in")
    return signed_in


def annotator() -> str:
    """The signed-in account's name: recorded with every label it gives."""
    return account().name


def role() -> Role:
    """The signed-in account's role (roles form a ladder: see services/accounts/accounts.py)."""
    return account().role


def labeling_session(engine: ProjectEngine) -> LabelingSession:
    """This user's labeling session; a new one when the project's engine or the annotator changes."""
    session = st.session_state.get("labeling_session")
    if session is None or session.engine is not engine or session.annotator != annotator():
        if session is not None:
            session.close()
        session = st.session_state["labeling_session"] = LabelingSession(engine, annotator())
    return session
