"""Choosing a set of classes from the keyboard (multi-label): keys 1–9 and 0 toggle the first
ten classes, the rest are toggled from a list. Used where a reviewer decides an image's classes."""

from __future__ import annotations

from collections.abc import Iterable

import streamlit as st

from app.safe_text import escape_markdown
from services.engine.project_engine import ClassInfo

KEYED_CLASSES = 10  # keys 1-9 and 0 pick the first ten classes; the rest are picked from a list
CHOSEN = "chosen_class_sets"  # state key -> set of chosen class ids


def _toggle(key: str, class_id: int) -> None:
    st.session_state[CHOSEN][key].symmetric_difference_update({class_id})


def class_set_toggles(classes: list[ClassInfo], *, key: str, initial: Iterable[int] = ()) -> list[int]:
    """Render toggle buttons for ``classes`` and return the chosen class ids, sorted.

    Parameters
    ----------
    classes : list of ClassInfo
        In key order: the first ten get the keys 1–9 and 0.
    key : str
        Names this choice in the session state (one per image and purpose); a new key starts
        from ``initial``.
    initial : iterable of int
        Class ids chosen before any toggle.
    """
    chosen = st.session_state.setdefault(CHOSEN, {}).setdefault(key, set(initial))
    for number, label_class in enumerate(classes[:KEYED_CLASSES], start=1):
        st.button(
            escape_markdown(label_class.name),
            key=f"{key}-toggle-{label_class.id}",
            shortcut=str(number % 10),
            type="primary" if label_class.id in chosen else "secondary",
            width="stretch",
            on_click=_toggle,
            args=(key, label_class.id),
        )
    if len(classes) > KEYED_CLASSES:
        more = st.selectbox("More classes", classes[KEYED_CLASSES:], format_func=lambda c: c.name, key=f"{key}-more")
        st.button("Add or remove this class", key=f"{key}-more-toggle", on_click=_toggle, args=(key, more.id))
    return sorted(chosen)
