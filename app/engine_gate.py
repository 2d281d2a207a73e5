"""Pages that need the engine call :func:`ready_engine`; while it starts they show progress."""

from __future__ import annotations

import streamlit as st

from app.safe_text import escape_markdown
from app.resources import database, settings
from app.user_state import chosen_project
from services.engine import ProjectEngine
from services.engines import Startup, start_engine

PHASE_TEXT = {
    "ingesting": "Adding the sample images",
    "embedding": "Computing image features with the {backbone} backbone",
    "loading": "Loading labels and the latest model",
}


def ready_engine() -> ProjectEngine:
    """The chosen project's engine; until it is ready, show progress and stop the page here."""
    startup = start_engine(database(), settings(), chosen_project())
    if startup.phase == "ready":
        return startup.engine
    if startup.phase == "failed":
        st.error(f"Could not open project {escape_markdown(chosen_project())}: {escape_markdown(startup.error)}",
                 icon=":material/error:")
        st.button("Try again")
        st.stop()
    _progress(startup)
    st.stop()


@st.fragment(run_every=0.5)
def _progress(startup: Startup) -> None:
    if startup.phase in ("ready", "failed"):
        st.rerun(scope="app")
    text = PHASE_TEXT.get(startup.phase, "Starting").format(backbone=settings().backbone)
    fraction = startup.done / startup.total if startup.total else 0.0
    counts = f" ({startup.done:,} of {startup.total:,} images)" if startup.total else ""
    st.progress(min(fraction, 1.0), text=f"{text}{counts}…")
