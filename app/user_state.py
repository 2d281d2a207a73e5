"""Per-user state (one browser session): chosen project, annotator name, labeling session."""

from __future__ import annotations

import getpass

import streamlit as st

from app.resources import settings
from services.engine import ProjectEngine
from services.labeling import LabelingSession


def default_annotator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "annotator"


def chosen_project() -> str:
    """The project picked in the sidebar, else the configured one."""
    return st.session_state.get("project") or settings().project


def annotator() -> str:
    return (st.session_state.get("annotator") or "").strip() or default_annotator()


def labeling_session(engine: ProjectEngine) -> LabelingSession:
    """This user's labeling session; a new one when the project's engine or the annotator changes."""
    session = st.session_state.get("labeling_session")
    if session is None or session.engine is not engine or session.annotator != annotator():
        if session is not None:
            session.close()
        session = st.session_state["labeling_session"] = LabelingSession(engine, annotator())
    return session
