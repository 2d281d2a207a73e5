"""Label page: one image, large, answered from the keyboard.

1-9 and 0 pick the first ten classes (multi-label: toggle them), Enter accepts the suggestion (multi-label:
saves the toggled classes), S skips, U or Backspace undoes, C picks any class from a filterable list,
N adds a class, ? shows the keys (C, N, ?, Backspace: app/keyboard.py).
"""

import math
from functools import partial

import streamlit as st

from app.auth import current_account, require
from app.class_toggles import KEYED_CLASSES
from app.engine_gate import ready_engine
from app.feature_note import show_feature_warning
from app.keyboard import event_value, label_keys
from app.label_why import why_panel
from app.safe_text import escape_markdown
from app.user_state import labeling_session
from services.engine.project_engine import Ask, ClassInfo
from services.errors import UserError
from services.labeling.class_names import checked_class_name
from services.labeling.classes import add_class
from services.labeling.session import ASK_IMAGE_SIDE, LabelingSession
from services.teams.leases import is_overlap
from storage.models import Role

require(Role.ANNOTATOR)  # first: see app/auth.py


def _still_allowed() -> bool:
    """Whether the signed-in account may still label: the pane's clicks rerun only the pane, not
    the app's sign-in check, and an admin may have disabled or demoted the account meanwhile."""
    account = current_account()
    return account is not None and account.can(Role.ANNOTATOR)


def _run(action, *args) -> None:
    """Button callback: do the action, keep a user error to show after the rerun."""
    if not _still_allowed():
        return  # nothing is written; the pane then reruns the whole app, which says why
    try:
        action(*args)
    except UserError as error:
        st.session_state["label_message"] = str(error)


def _toggle(item_id: int, class_id: int) -> None:
    chosen = st.session_state.setdefault("toggled", {}).setdefault(item_id, set())
    chosen.symmetric_difference_update({class_id})


def _add_class_and_label(session: LabelingSession, item_id: int, name: str) -> None:
    engine = session.engine
    add_class(engine, name)
    stored = checked_class_name(name)
    new = next(c for c in engine.active_classes() if c.name == stored)
    _use_class(session, item_id, new.id)


def _use_class(session: LabelingSession, item_id: int, class_id: int) -> None:
    if session.engine.multi_label:
        _toggle(item_id, class_id)
    else:
        session.label(item_id, [class_id])


def _new_class_typed(session: LabelingSession, item_id: int) -> None:
    """The name typed after N (app/keyboard.py), sent with Enter."""
    name = event_value("new_class")
    if isinstance(name, str):
        _run(_add_class_and_label, session, item_id, name)


def _class_picked(session: LabelingSession, item_id: int) -> None:
    """The class chosen in the picker (C); one of the project's active classes, or a stale list."""
    class_id = event_value("pick")
    if isinstance(class_id, int) and any(c.id == class_id for c in session.engine.active_classes()):
        _run(_use_class, session, item_id, class_id)


def _button_text(label_class: ClassInfo, probability: float) -> str:
    name = escape_markdown(label_class.name)
    return name if math.isnan(probability) else f"{name} · {probability:.0%}"


def _class_buttons(session: LabelingSession, ask: Ask, classes: list[ClassInfo], probability: dict[int, float]) -> None:
    multi_label = session.engine.multi_label
    chosen = st.session_state.setdefault("toggled", {}).get(ask.item_id, set())
    for key, label_class in enumerate(classes[:KEYED_CLASSES], start=1):  # keys 1..9, then 0
        on = multi_label and label_class.id in chosen
        st.button(
            _button_text(label_class, probability.get(label_class.id, math.nan)),
            key=f"class-{label_class.id}",
            shortcut=str(key % 10),
            type="primary" if on else "secondary",
            width="stretch",
            on_click=_run,
            args=(_toggle, ask.item_id, label_class.id)
            if multi_label
            else (session.label, ask.item_id, [label_class.id]),
        )
    if len(classes) > KEYED_CLASSES:
        st.caption(f"{len(classes) - KEYED_CLASSES} more classes: press **C** to choose any class.")


def _action_buttons(session: LabelingSession, ask: Ask, classes: list[ClassInfo], top: int | None) -> None:
    if session.engine.multi_label:
        chosen = sorted(st.session_state.setdefault("toggled", {}).get(ask.item_id, set()))
        st.button(
            "Save the chosen classes",
            shortcut="Enter",
            type="primary",
            disabled=not chosen,
            on_click=_run,
            args=(session.label, ask.item_id, chosen),
            width="stretch",
        )
    else:
        names = {c.id: c.name for c in classes}
        st.button(
            f"Accept {escape_markdown(names[top])}" if top is not None else "Accept the suggestion",
            shortcut="Enter",
            type="primary",
            disabled=top is None,
            width="stretch",
            on_click=_run,
            args=(session.label, ask.item_id, [top]),
        )
    with st.container(horizontal=True):
        st.button("Skip", shortcut="S", on_click=_run, args=(session.skip, ask.item_id))
        # One Undo control: U is its shortcut, Backspace presses it too (app/keyboard.py).
        st.button("Undo", key="undo", shortcut="U", on_click=_run, args=(session.undo,), disabled=not session.history)
    label_keys(
        classes,
        multi_label=session.engine.multi_label,
        on_new_class=partial(_new_class_typed, session, ask.item_id),
        on_pick=partial(_class_picked, session, ask.item_id),
    )


def _suggestion(session: LabelingSession, ask: Ask) -> tuple[dict[int, float], int | None]:
    """Probability per active class, and the top suggestion (None without a probe)."""
    suggestions = session.engine.suggestions(ask.item_id)
    probability = dict(suggestions)
    top = suggestions[0][0] if suggestions and not math.isnan(suggestions[0][1]) else None
    if session.engine.multi_label and top is not None:
        toggled = st.session_state.setdefault("toggled", {})
        toggled.setdefault(ask.item_id, {c for c, p in suggestions if p >= 0.5})
    return probability, top


@st.fragment
def label_pane(session: LabelingSession) -> None:
    if not _still_allowed():
        st.rerun(scope="app")
    message = st.session_state.pop("label_message", None)
    if message:
        st.warning(escape_markdown(message), icon=":material/warning:")
    ask = session.current()
    if ask is None:
        st.success("Every image of this project is labeled or skipped.", icon=":material/check_circle:")
        st.button(
            "Undo the last label",
            key="undo",
            shortcut="U",
            on_click=_run,
            args=(session.undo,),
            disabled=not session.history,
        )
        return
    engine = session.engine
    classes = engine.active_classes()
    if is_overlap(ask):  # an independent second opinion: the model learned the first one, so it is not shown
        probability, top = {}, None
    else:
        probability, top = _suggestion(session, ask)
    image_column, controls = st.columns([3, 2], gap="large")
    with image_column:
        st.image(session.image(ask), width=ASK_IMAGE_SIDE)
        st.text(ask.path)
        if is_overlap(ask):
            st.caption(
                "Second opinion: another annotator has labeled this image too. Give your own label; "
                "theirs and the model's guess are hidden, and a reviewer settles any difference."
            )
    with controls:
        if not classes:
            st.info("No classes yet: press **N**, type the name of the class this image shows and press Enter.")
        _class_buttons(session, ask, classes, probability)
        _action_buttons(session, ask, classes, top)
        serving = engine.serving
        model = (
            f"model v{serving.model_version_id} trained on {serving.metrics.get('trained_labels', 0)} labels"
            if serving.model_version_id
            else "no model yet (it trains once two classes have labels)"
        )
        st.caption(f"{len(session.history)} labeled in this session · {model}")
        if engine.last_error:
            st.warning(
                f"The last retrain failed; the previous model keeps serving. {escape_markdown(engine.last_error)}"
            )
    why_panel(engine, ask)


engine = ready_engine()
show_feature_warning(engine)
label_pane(labeling_session(engine))
