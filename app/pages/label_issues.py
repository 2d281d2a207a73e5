"""Label issues: labels that out-of-fold probabilities say are probably wrong, one at a time.

Enter keeps the given label (the safe default: a flag is a doubt, not a verdict), L relabels
with the suggested class, S skips; either verdict is a ``review`` annotation superseding the
current one. Each flag shows its confidence and the page the model's out-of-fold accuracy; when
the model is too weak for flags to mean much, the page says so and flags nothing. Below: given against out-of-fold
predicted class, for every labeled image. A multi-label project reviews class sets instead
(app/multi_label_issues.py).
"""

import plotly.graph_objects as go
import streamlit as st

from app.auth import require
from app.engine_gate import ready_engine
from app.feature_note import show_feature_warning
from app.multi_label_issues import show as show_multi_label
from app.safe_text import escape_markdown, escape_plotly
from app.user_state import annotator
from services.data_engine.label_issues import LabelIssue, label_issue_queue, review_label
from services.errors import UserError
from services.labeling.session import ASK_IMAGE_SIDE
from storage.models import Role

require(Role.REVIEWER)  # first: see app/auth.py

QUEUE = "label_issue_queue"  # (project id, queue, position of the issue on screen)

st.title("Label issues")
engine = ready_engine()
show_feature_warning(engine)
if engine.multi_label:
    show_multi_label(engine)  # class sets instead of single classes: app/multi_label_issues.py
    st.stop()


def _compute() -> None:
    with st.spinner("Fitting out-of-fold models on every label…"):
        st.session_state[QUEUE] = (engine.project_id, label_issue_queue(engine), 0)


def _advance() -> None:
    project_id, queue, position = st.session_state[QUEUE]
    st.session_state[QUEUE] = (project_id, queue, position + 1)


def _review(issue: LabelIssue, class_id: int) -> None:
    try:
        review_label(engine, issue, class_id=class_id, reviewer=annotator())
    except UserError as error:  # the issue stays on screen, so the message can be acted on (or skipped)
        st.session_state["label_issue_message"] = str(error)
        return
    _advance()


if st.session_state.get(QUEUE, (None,))[0] != engine.project_id:
    _compute()
_, queue, position = st.session_state[QUEUE]
summary, refresh = st.columns([4, 1])
accuracy = (
    f" Out-of-fold accuracy {queue.accuracy:.0%} (always the most frequent class: {queue.chance:.0%})."
    if queue.accuracy == queue.accuracy  # not NaN
    else ""
)
summary.caption(
    f"{queue.n_flagged} of {queue.n_labeled} labels flagged by confident learning (cleanlab) on "
    f"out-of-fold probabilities, only where the model gives the given label at most 5%; "
    f"{len(queue.issues)} not reviewed yet, most suspicious first.{accuracy}  \n"
    "Enter keeps the given label, L relabels as the suggestion, S skips."
)
refresh.button("Recompute", on_click=_compute, icon=":material/refresh:")
if message := st.session_state.pop("label_issue_message", None):
    st.warning(escape_markdown(message))
if queue.warning:
    st.warning(f"No labels flagged: {escape_markdown(queue.warning)}.", icon=":material/warning:")

if position < len(queue.issues):
    issue = queue.issues[position]
    given, suggested = engine.classes[issue.given].name, engine.classes[issue.suggested].name
    picture, about = st.columns([2, 3])
    picture.image(engine.pool.images.get(issue.item_id, issue.path, ASK_IMAGE_SIDE))
    with about:
        st.subheader(f"{position + 1} of {len(queue.issues)}")
        st.text(issue.path)
        st.markdown(
            f"Given label: **{escape_markdown(given)}** (out-of-fold probability {issue.self_confidence:.0%})  \n"
            f"Suggested label: **{escape_markdown(suggested)}**  \n"
            f"Confidence that the given label is wrong: {issue.confidence:.0%}"
        )
        st.button(
            f"Keep {escape_markdown(given)}",
            shortcut="Enter",
            type="primary",
            on_click=_review,
            args=(issue, issue.given),
        )
        st.button(
            f"Relabel as {escape_markdown(suggested)}",
            shortcut="L",
            on_click=_review,
            args=(issue, issue.suggested),
            disabled=issue.suggested == issue.given,
        )
        st.button("Skip", shortcut="S", on_click=_advance)
        others = [c for c in engine.active_classes() if c.id not in (issue.given, issue.suggested)]
        if others:
            other = st.selectbox(
                "Or relabel as", others, format_func=lambda c: c.name, index=None, placeholder="another class"
            )
            st.button(
                "Relabel",
                disabled=other is None,
                on_click=_review,
                args=(issue, other.id if other is not None else issue.given),
            )
else:
    if queue.issues:
        st.success("No label issues left to review.")
    elif not queue.warning:
        st.success("No label issues found.")

st.subheader("Given against out-of-fold predicted class")
if queue.class_ids and queue.confusion.sum():
    names = [escape_plotly(engine.classes[c].name) for c in queue.class_ids]
    chart = go.Figure(
        go.Heatmap(
            z=queue.confusion.tolist(),
            x=names,
            y=names,
            colorscale="Blues",
            texttemplate="%{z}",
            hovertemplate="given %{y}, predicted %{x}: %{z}<extra></extra>",
        )
    )
    chart.update_layout(
        xaxis_title="out-of-fold prediction",
        yaxis_title="given label",
        yaxis_autorange="reversed",
        height=120 + 40 * len(names),
        margin=dict(l=0, r=0, t=0, b=0),
    )
    st.plotly_chart(chart, width="stretch")
else:
    st.caption(f"Needs at least 10 labels of two classes; the project has {queue.n_labeled} labels.")
