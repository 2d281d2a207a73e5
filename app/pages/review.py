"""Review: images whose annotators disagree, one at a time; the reviewer's label is final.

1-9 and 0 pick the first ten classes as the final label (multi-label projects: toggle them,
Enter saves), S leaves the image for later. Below: agreement on the overlap images, and
for admins the team settings (lease time, overlap share).
"""

import math

import streamlit as st

from app.auth import require
from app.class_toggles import KEYED_CLASSES, class_set_toggles
from app.engine_gate import ready_engine
from app.safe_text import escape_markdown
from app.user_state import annotator
from services.errors import UserError
from services.labeling.session import ASK_IMAGE_SIDE
from services.teams.agreement import project_agreement
from services.teams.leases import TeamSettings, read_team_settings, save_team_settings
from services.teams.review import ReviewItem, decide, review_queue
from storage.models import Role

account = require(Role.REVIEWER)  # first: see app/auth.py

LATER = "review_later"  # task ids the reviewer left for later, in this browser session

st.title("Review")
engine = ready_engine()


def _decide(task: ReviewItem, class_ids: list[int]) -> None:
    try:
        decide(engine.db, project_id=engine.project_id, task=task, reviewer=annotator(), class_ids=class_ids)
    except UserError as error:
        st.session_state["review_message"] = str(error)


def _later(task_id: int) -> None:
    st.session_state.setdefault(LATER, []).append(task_id)


def _names(class_ids) -> str:
    return ", ".join(engine.classes[c].name for c in class_ids) or "(none)"


queue = review_queue(engine.db, engine.project_name)
later = st.session_state.get(LATER, [])
queue.sort(key=lambda task: later.index(task.task_id) if task.task_id in later else -1)  # stable: later ones last
if message := st.session_state.pop("review_message", None):
    st.warning(escape_markdown(message), icon=":material/warning:")
st.caption(
    f"{len(queue)} image(s) to review. Each comes from overlap asks: two annotators labeled the same image "
    "and disagree. Your label is recorded as a review annotation and is final; the image comes back only "
    "if a later label differs from your decision."
)

if queue:
    task = queue[0]
    classes = engine.active_classes()
    image_column, controls = st.columns([3, 2], gap="large")
    with image_column:
        st.image(engine.pool.images.get(task.item_id, task.path, ASK_IMAGE_SIDE), width=ASK_IMAGE_SIDE)
        st.text(task.path)
    with controls:
        st.dataframe(
            [{"annotator": name, "label": _names(ids)} for name, ids in sorted(task.labels.items())],
            hide_index=True,
            width="stretch",
        )
        if task.previous_decision is not None:
            st.caption(
                f"Reopened (round {task.round}): the last review decided {escape_markdown(_names(task.previous_decision))}."
            )
        if engine.multi_label:
            agreed = set.intersection(*(set(ids) for ids in task.labels.values()))
            st.caption("Final classes (keys 1–9 and 0 toggle them; those every annotator gave start chosen):")
            chosen = class_set_toggles(classes, key=f"review-{task.task_id}-{task.round}", initial=agreed)
            st.button(
                "Save the decision",
                shortcut="Enter",
                type="primary",
                disabled=not chosen,
                width="stretch",
                on_click=_decide,
                args=(task, chosen),
            )
        else:
            given = {c for ids in task.labels.values() for c in ids}
            for key, label_class in enumerate(classes[:KEYED_CLASSES], start=1):
                st.button(
                    escape_markdown(label_class.name),
                    key=f"decide-{label_class.id}",
                    shortcut=str(key % 10),
                    type="primary" if label_class.id in given else "secondary",
                    width="stretch",
                    on_click=_decide,
                    args=(task, [label_class.id]),
                )
            if len(classes) > KEYED_CLASSES:
                more = st.selectbox("More classes", classes[KEYED_CLASSES:], format_func=lambda c: c.name)
                st.button("Use this class", on_click=_decide, args=(task, [more.id]))
        st.button("Later", shortcut="S", on_click=_later, args=(task.task_id,))
else:
    st.success("Nothing to review.", icon=":material/check_circle:")

st.subheader("Agreement on overlap images")
agreement = project_agreement(engine.db, engine.project_name)


def _number(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


if agreement.n_items == 0:
    st.caption(
        "No image has labels from two annotators yet. A share of the labeled images is asked again of "
        "one other annotator (the overlap share below) to measure agreement."
    )
else:
    alpha, items = st.columns(2)
    alpha.metric("Krippendorff's alpha (nominal)", _number(agreement.alpha))
    items.metric("Overlap images", f"{agreement.n_items:,}")
    per_annotator, per_class = st.columns(2)
    with per_annotator:
        st.caption("Per annotator: share of their overlap labels equal to the other annotator's, and Cohen's kappa")
        st.dataframe(
            [
                {
                    "annotator": a.annotator,
                    "images": a.n_items,
                    "agreement": f"{a.percent:.0%}",
                    "kappa": _number(a.kappa),
                }
                for a in agreement.annotators
            ],
            hide_index=True,
            width="stretch",
        )
    with per_class:
        st.caption("Per class: Krippendorff's alpha, the class against the rest")
        st.dataframe(
            [{"class": engine.classes[c].name, "alpha": _number(v)} for c, v in agreement.alpha_per_class.items()],
            hide_index=True,
            width="stretch",
        )
    st.caption("Per pair of annotators: Cohen's kappa on the images both labeled")
    st.dataframe(
        [
            {
                "annotators": f"{p.first} · {p.second}",
                "images": p.n_items,
                "agreement": f"{p.percent:.0%}",
                "kappa": _number(p.kappa),
            }
            for p in agreement.pairs
        ],
        hide_index=True,
        width="stretch",
    )
    st.caption("Undefined measures (one image, or a single class seen) show as –.")

if account.can(Role.ADMIN):
    with st.expander("Team settings"):
        team = read_team_settings(engine.db, engine.project_id)
        with st.form("team-settings", border=False):
            minutes = st.number_input(
                "Lease time (minutes): an ask not labeled within this time returns to the pool",
                min_value=1,
                max_value=24 * 60,
                value=max(1, team.lease_seconds // 60),
            )
            share = st.number_input(
                "Overlap share (%): labeled images asked again of one other annotator",
                min_value=0.0,
                max_value=100.0,
                value=100 * team.overlap_share,
                step=1.0,
            )
            if st.form_submit_button("Save"):
                save_team_settings(
                    engine.db,
                    engine.project_id,
                    TeamSettings(lease_seconds=int(minutes) * 60, overlap_share=share / 100),
                    by=annotator(),
                )
                st.success("Saved; labeling sessions started from now on use it.")
