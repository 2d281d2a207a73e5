"""Label page: one image, large, answered from the keyboard.

1-9 and 0 pick the first ten classes (multi-label: toggle them), Enter accepts the suggestion (multi-label:
saves the toggled classes), S skips, U or Backspace undoes, N adds a class.
"""

import math

import streamlit as st

from app.auth import current_account, require
from app.class_toggles import KEYED_CLASSES
from app.engine_gate import ready_engine
from app.feature_note import show_feature_warning
from app.label_why import why_panel
from app.safe_text import escape_markdown
from app.user_state import labeling_session
from services.engine.project_engine import Ask, ClassInfo
from services.errors import UserError
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


def _open_new_class_form() -> None:
    st.session_state["adding_class"] = True


def _add_class_and_label(session: LabelingSession, item_id: int) -> None:
    name = st.session_state.get("new_class_name", "")
    engine = session.engine
    add_class(engine, name)
    st.session_state["adding_class"] = False
    new = next(c for c in engine.active_classes() if c.name == name.strip())
    if engine.multi_label:
        _toggle(item_id, new.id)
    else:
        session.label(item_id, [new.id])


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
        more = st.selectbox("More classes", classes[KEYED_CLASSES:], format_func=lambda c: c.name, key="more_class")
        st.button(
            "Use this class",
            on_click=_run,
            args=(_toggle, ask.item_id, more.id) if multi_label else (session.label, ask.item_id, [more.id]),
        )


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
        st.button("Undo", shortcut="U", on_click=_run, args=(session.undo,), disabled=not session.history)
        st.button(
            "Undo",
            key="undo-backspace",
            shortcut="Backspace",
            on_click=_run,
            args=(session.undo,),
            disabled=not session.history,
            type="tertiary",
        )
        st.button("New class", shortcut="N", on_click=_open_new_class_form)
    if st.session_state.get("adding_class"):
        with st.form("new-class", clear_on_submit=True, border=False):
            st.text_input("New class name", key="new_class_name", max_chars=200)
            st.form_submit_button(
                "Add the class and use it for this image",
                on_click=_run,
                args=(_add_class_and_label, session, ask.item_id),
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
            "Undo the last label", shortcut="U", on_click=_run, args=(session.undo,), disabled=not session.history
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
            st.info("No classes yet: press **N** and name the class this image shows.")
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
