"""A small form that saves an image as the example of a new failure slice (Explore page)."""

from __future__ import annotations

import streamlit as st

from app.safe_text import escape_markdown
from app.user_state import annotator
from services.data_engine.slices import create_slice
from services.engine.project_engine import ProjectEngine
from services.errors import UserError


def save_as_slice(engine: ProjectEngine, item_id: int) -> None:
    """Name a slice around ``item_id`` and save it; its page is Failure slices."""
    with st.popover("Save as a failure slice", icon=":material/bookmark_add:"):
        with st.form(f"slice-from-{item_id}"):
            name = st.text_input("Slice name", max_chars=200)
            if st.form_submit_button("Save"):
                try:
                    create_slice(engine, name=name, example_item_ids=[item_id], created_by=annotator())
                except UserError as error:
                    st.error(escape_markdown(str(error)))
                else:
                    st.success(f"Saved slice {escape_markdown(name.strip())}; see the Failure slices page.")
