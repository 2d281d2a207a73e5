"""The keyboard layer of the Label page, beyond Streamlit's one-key button shortcuts.

A component (``st.components.v2``, no iframe) whose script, ``keyboard.js``, listens to every key
before Streamlit's shortcuts do:

- **N** opens a box for a new class's name with the focus in it; until Enter or Esc no key reaches a
  shortcut. Enter sends the name once (the ``new_class`` event); Esc closes the box.
- **C** opens a class picker over every class: typing filters, the arrow keys move, Enter sends the
  class (the ``pick`` event); Esc closes it.
- **?** shows the key map; **Backspace** presses the Undo button.
- On every page of the app, once the component has loaded: Esc takes the focus out of any widget
  (the sidebar's Project box included), and after a button, check box, tab or a select box's option
  is used the focus goes back to the page, so that the next key is a shortcut again.

Class names reach the browser as JSON data and are set as text (``textContent``), never as HTML.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from app.class_toggles import KEYED_CLASSES
from services.engine.project_engine import ClassInfo

HERE = Path(__file__).parent

_COMPONENT = st.components.v2.component(
    "banana.keys",
    js=(HERE / "keyboard.js").read_text(encoding="utf-8"),
    css=(HERE / "keyboard.css").read_text(encoding="utf-8"),
    isolate_styles=True,
)


def label_key_map(*, multi_label: bool) -> list[tuple[str, str]]:
    """(keys, what they do) on the Label page, as the ``?`` key shows them."""
    choose = (
        "Toggle one of the first ten classes" if multi_label else "Label the image with one of the first ten classes"
    )
    return [
        ("1–9, 0", choose),
        ("Enter", "Save the toggled classes" if multi_label else "Accept the model's suggestion"),
        ("C", "Choose any class from a list: type to filter, ↑ ↓, Enter"),
        ("N", "New class: type its name, Enter adds it and uses it for this image"),
        ("S", "Skip this image"),
        ("U or Backspace", "Undo your last label"),
        ("Esc", "Close a box; take the focus out of any field"),
        ("?", "Show or hide these keys"),
    ]


def label_keys(
    classes: list[ClassInfo],
    *,
    multi_label: bool,
    on_new_class: Callable[[], None],
    on_pick: Callable[[], None],
    key: str = "label-keys",
) -> None:
    """Mount the Label page's keyboard layer (its buttons: New class, All classes, Keys).

    ``on_new_class`` and ``on_pick`` run (before the next run of the pane) when the user
    submits a name or picks a class; they read it with :func:`event_value`.
    """
    data: dict[str, Any] = {
        "classes": [
            {"id": c.id, "name": c.name, "key": str(n % 10) if n <= KEYED_CLASSES else ""}
            for n, c in enumerate(classes, start=1)
        ],
        "keymap": [list(row) for row in label_key_map(multi_label=multi_label)],
    }
    _COMPONENT(key=key, data=data, on_new_class_change=on_new_class, on_pick_change=on_pick, width="stretch")


def focus_keeper() -> None:
    """Mount the keyboard layer without the Label page's boxes: on every page, Esc and a used
    widget hand the focus back to the page (see the module's docstring)."""
    _COMPONENT(key="focus-keeper", data={"focus_only": True}, width="stretch", height=0)


def event_value(event: str, key: str = "label-keys") -> Any:
    """The value the browser sent with ``event`` in this run (None when it sent none)."""
    state = st.session_state.get(key)
    if state is None:
        return None
    return state.get(event) if hasattr(state, "get") else getattr(state, event, None)
