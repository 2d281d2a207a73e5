"""The Label issues page of a multi-label project: class sets that out-of-fold probabilities
say are probably wrong, one image at a time.

Enter keeps the given set (the safe default: a flag is a doubt, not a verdict), L accepts the
suggested set, S skips, and keys 1–9 and 0 toggle
classes of a set that Ctrl+Enter saves; each verdict is a ``review`` annotation superseding
the current one. Below: per class, its labels, the flagged images that doubt it and the
out-of-fold precision and recall.
"""

from __future__ import annotations

import math

import streamlit as st

from app.class_toggles import class_set_toggles
from app.safe_text import escape_markdown
from app.user_state import annotator
from services.data_engine.label_issues import MultiLabelIssue, multi_label_issue_queue, review_label_set
from services.engine.project_engine import ProjectEngine
from services.errors import UserError
from services.labeling.session import ASK_IMAGE_SIDE

QUEUE = "multi_label_issue_queue"  # (project id, queue, position of the issue on screen)
MESSAGE = "label_issue_message"


def _names(engine: ProjectEngine, class_ids) -> str:
    return ", ".join(engine.classes[c].name for c in class_ids) if class_ids else "no class"


def _percent(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.0%}"


def show(engine: ProjectEngine) -> None:
    """Render the page body for ``engine``'s multi-label project."""

    def compute() -> None:
        with st.spinner("Fitting out-of-fold models on every label…"):
            st.session_state[QUEUE] = (engine.project_id, multi_label_issue_queue(engine), 0)

    def advance() -> None:
        project_id, queue, position = st.session_state[QUEUE]
        st.session_state[QUEUE] = (project_id, queue, position + 1)

    def review(issue: MultiLabelIssue, class_ids) -> None:
        try:
            review_label_set(engine, issue, class_ids=class_ids, reviewer=annotator())
        except UserError as error:  # the issue stays on screen, so the message can be acted on (or skipped)
            st.session_state[MESSAGE] = str(error)
            return
        advance()

    if st.session_state.get(QUEUE, (None,))[0] != engine.project_id:
        compute()
    _, queue, position = st.session_state[QUEUE]
    summary, refresh = st.columns([4, 1])
    refresh.button("Recompute", on_click=compute, icon=":material/refresh:")
    if not queue.enough_labels:
        summary.info(
            f"Label issues need at least {queue.min_labels} labeled images with at least two classes in use; "
            f"this project has {queue.n_labeled} labeled images and {len(queue.classes)} classes in use. "
            "Label more images, then Recompute."
        )
        return
    summary.caption(
        f"{queue.n_flagged} of {queue.n_labeled} labeled images flagged by confident learning (cleanlab, "
        f"each class against the rest) on out-of-fold probabilities; {len(queue.issues)} not reviewed yet, "
        "worst label quality first."
    )
    if message := st.session_state.pop(MESSAGE, None):
        st.warning(escape_markdown(message))

    if position < len(queue.issues):
        _issue(engine, queue.issues[position], position, len(queue.issues), review, advance)
    else:
        st.success("No label issues left to review." if queue.issues else "No label issues found.")

    st.subheader("Per class, out of fold")
    st.dataframe(
        [
            {
                "class": engine.classes[c.class_id].name,
                "labels": c.n_labels,
                "flagged": c.n_flagged,
                "precision": _percent(c.precision),
                "recall": _percent(c.recall),
            }
            for c in queue.classes
        ],
        hide_index=True,
        width="stretch",
    )
    st.caption(
        "Flagged: flagged images where cleanlab doubts the class. Precision and recall: of the suggested sets "
        "(out-of-fold probability ≥ 50%) against the given ones, over every labeled image; – where undefined."
    )


def _issue(engine: ProjectEngine, issue: MultiLabelIssue, position: int, total: int, review, advance) -> None:
    given, suggested = (escape_markdown(_names(engine, ids)) for ids in (issue.given, issue.suggested))
    picture, about = st.columns([2, 3])
    picture.image(engine.pool.images.get(issue.item_id, issue.path, ASK_IMAGE_SIDE))
    with about:
        st.subheader(f"{position + 1} of {total}")
        st.text(issue.path)
        st.markdown(
            f"Given classes: **{given}**  \nSuggested classes: **{suggested}**  \n"
            f"Label quality {issue.quality:.2f} (0 worst, 1 best)"
        )
        shown = issue.differing or issue.doubted
        if issue.differing:
            st.caption("Out-of-fold probability of the classes that differ:")
        elif shown:
            st.caption("The suggested set equals the given one; cleanlab doubts these classes:")
        lines = [
            f"- **{escape_markdown(engine.classes[c].name)}**: {issue.probability.get(c, 0.0):.0%}, "
            f"{'given' if c in issue.given else 'not given'}, {'suggested' if c in issue.suggested else 'not suggested'}"
            for c in shown
        ]
        if lines:
            st.markdown("\n".join(lines))
        st.button(f"Keep {given}", shortcut="Enter", type="primary", on_click=review, args=(issue, issue.given))
        st.button(
            f"Accept {suggested}",
            shortcut="L",
            on_click=review,
            args=(issue, issue.suggested),
            disabled=issue.suggested == issue.given,
        )
        st.button("Skip", shortcut="S", on_click=advance)
        st.caption("Or choose the classes (keys 1–9 and 0 toggle them), then save them (Ctrl+Enter):")
        classes = engine.active_classes()
        active = {c.id for c in classes}
        chosen = class_set_toggles(
            classes, key=f"label-issue-set-{issue.item_id}", initial=[c for c in issue.given if c in active]
        )
        st.button(
            "Save these classes",
            shortcut="Ctrl+Enter",
            disabled=not chosen,
            on_click=review,
            args=(issue, tuple(chosen)),
        )
