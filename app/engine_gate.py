"""Pages that need the engine call :func:`ready_engine`; while it starts they show progress.

Each call also checks, at most every few seconds, for images ingested since the engine
started; they join its pool in the background, with a note in the sidebar meanwhile.
"""

from __future__ import annotations

import streamlit as st

from app.resources import database, settings
from app.safe_text import escape_markdown
from app.user_state import chosen_project
from services.engine.lifecycle import Startup, grow_pool
from services.engine.project_engine import ProjectEngine

PHASE_TEXT = {
    "embedding": "Computing image features with the {backbone} backbone",
    "loading": "Loading labels and the latest model",
}


def ready_engine() -> ProjectEngine:
    """The chosen project's engine; until it is ready, show progress and stop the page here."""
    startup = grow_pool(database(), settings(), chosen_project())
    if startup.phase == "ready":
        with st.sidebar:
            if startup.growing is not None:
                _growth_note(startup)
            elif startup.growth_error:
                st.warning(
                    f"New images could not be added yet (retried in a minute): {escape_markdown(startup.growth_error)}",
                    icon=":material/warning:",
                )
        return startup.engine
    if startup.phase == "failed":
        st.error(
            f"Could not open project {escape_markdown(chosen_project())}: {escape_markdown(startup.error)}",
            icon=":material/error:",
        )
        st.button("Try again")
        st.stop()
    _progress(startup)
    st.stop()


@st.fragment(run_every=0.5)
def _progress(startup: Startup) -> None:
    if startup.phase in ("ready", "failed"):
        st.rerun(scope="app")
    text = PHASE_TEXT.get(startup.phase, "Starting").format(backbone=startup.backbone or "project's")
    fraction = startup.done / startup.total if startup.total else 0.0
    counts = f" ({startup.done:,} of {startup.total:,} images)" if startup.total else ""
    st.progress(min(fraction, 1.0), text=f"{text}{counts}…")


def growth_text(growing: int, switching: str | None = None, done: int = 0, total: int = 0) -> str:
    """The sidebar note while the pool grows by ``growing`` images (fewer than one: some left), or
    while every image is embedded again with the backbone ``switching`` (``done`` of ``total``)."""
    if switching is not None:
        counted = f": {done:,} of {total:,} images" if total else ""
        return f"Switching to the {switching} backbone{counted}… Labeling goes on with the current features."
    if growing < 1:
        return "Updating the image pool…"
    return f"Adding {growing:,} new image{'s' if growing != 1 else ''}…"


@st.fragment(run_every=1)
def _growth_note(startup: Startup) -> None:
    # Empty once the fresh engine is swapped in; pages take it up on their next run.
    if startup.growing is not None:
        st.caption(growth_text(startup.growing, startup.switching, startup.growth_done, startup.growth_total))
