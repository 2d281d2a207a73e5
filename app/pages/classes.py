"""Classes and settings: add, rename, merge, archive classes; image features (the backbone); labeling
mode (single- or multi-label); selection strategy; retrain now."""

from collections import Counter

import streamlit as st

from app.auth import require
from app.engine_gate import ready_engine
from app.feature_note import backbone_caption, show_feature_warning
from app.safe_text import escape_markdown
from app.user_state import annotator
from core.features.backbones import FETCH_COMMAND
from core.selection.selection import ALL_STRATEGIES
from services.engine.lifecycle import refresh_engine
from services.errors import UserError
from services.features.project_backbone import (
    available_backbones,
    backbone_training,
    project_backbone,
    set_project_backbone,
)
from services.labeling.classes import add_class, merge_classes, rename_class, set_archived
from services.projects import get_project, set_multi_label
from storage.models import Role

require(Role.ADMIN)  # first: see app/auth.py

st.title("Classes and settings")
engine = ready_engine()


def act(message: str, action, *args, **kwargs) -> None:
    try:
        action(*args, **kwargs)
    except UserError as error:
        st.error(escape_markdown(str(error)))
    else:
        st.session_state["classes_done"] = message
        st.rerun()


done = st.session_state.pop("classes_done", None)
if done:
    st.success(escape_markdown(done))

counts = Counter(c for item in engine.labeled_items() for c in engine.current_label(item).class_ids)
everything = list(engine.classes.values())
st.dataframe(
    [
        {"key": str(i % 10) if i <= 10 else "", "class": c.name, "labels": counts.get(c.id, 0), "archived": c.archived}
        for i, c in enumerate(everything, start=1)
    ],
    hide_index=True,
    width="stretch",
)
active = engine.active_classes()
archived = [c for c in everything if c.archived]

# Tracked, so the tab just used stays open after its action reruns the page.
add, rename, merge, archive = st.tabs(
    ["Add", "Rename", "Merge", "Archive or restore"], key="classes_tab", on_change="rerun"
)
with add, st.form("add-class", clear_on_submit=True):
    name = st.text_input("Name", max_chars=200)
    if st.form_submit_button("Add class"):
        act(f"Added class {name.strip()}.", add_class, engine, name)
with rename:
    if active:
        chosen = st.selectbox("Class", active, format_func=lambda c: c.name, key="rename-class")
        new_name = st.text_input("New name", max_chars=200, key="rename-name")
        if st.button("Rename"):
            act(f"Renamed {chosen.name} to {new_name.strip()}.", rename_class, engine, chosen.id, new_name)
with merge:
    if len(active) >= 2:
        source = st.selectbox("Merge this class", active, format_func=lambda c: c.name, key="merge-source")
        target = st.selectbox("into this class", active, index=1, format_func=lambda c: c.name, key="merge-target")
        st.caption(
            "Every image of the first class is relabeled (a new annotation; history is kept) "
            "and the first class is archived."
        )
        if st.button("Merge"):
            act(
                f"Merged {source.name} into {target.name}.",
                merge_classes,
                engine,
                source_id=source.id,
                target_id=target.id,
                annotator=annotator(),
            )
with archive:
    if active:
        chosen = st.selectbox("Archive", active, format_func=lambda c: c.name, key="archive-class")
        st.caption("An archived class keeps its labels but is no longer offered when labeling.")
        if st.button("Archive"):
            act(f"Archived {chosen.name}.", set_archived, engine, chosen.id, True)
    if archived:
        chosen = st.selectbox("Restore", archived, format_func=lambda c: c.name, key="restore-class")
        if st.button("Restore"):
            act(f"Restored {chosen.name}.", set_archived, engine, chosen.id, False)

st.header("Image features")
backbone_caption(engine)
show_feature_warning(engine)
choices = available_backbones()
current_backbone = project_backbone(engine.db, engine.settings, engine.project_name).name
with st.form("backbone"):
    chosen_backbone = st.selectbox(
        "Backbone",
        choices,
        index=choices.index(current_backbone) if current_backbone in choices else 0,
        format_func=lambda name: f"{name}: {backbone_training(name)}",
        help=f"Backbones whose weights are on this machine. Fetch a published one with {FETCH_COMMAND} NAME.",
    )
    if st.form_submit_button(
        "Switch backbone",
        disabled=bool(engine.settings.backbone),
        help="Every image is embedded again in the background; labeling goes on meanwhile and every label is kept.",
    ):
        act(
            f"Switching to {chosen_backbone}: the images are embedded again in the background (see the sidebar).",
            set_project_backbone,
            engine.db,
            engine.project_name,
            chosen_backbone,
            by=annotator(),
        )
if engine.settings.backbone:
    st.caption("BANANA_BACKBONE is set for this server, so it decides; unset it to use the project's choice.")

st.header("Labeling mode")


def switch_mode(multi_label: bool) -> None:
    """Switch the project's mode; its engine is then built afresh (the Label page follows)."""
    set_multi_label(engine.db, engine.project_name, multi_label)
    refresh_engine(engine.settings, engine.project_name)


multi_label = get_project(engine.db, engine.project_name).multi_label
if multi_label:
    st.caption(
        "Multi-label: an image may get several classes (on the Label page the number keys toggle "
        "classes and Enter saves them)."
    )
    if st.button(
        "Switch to single-label", key="mode-single", help="Allowed once no image carries more than one class."
    ):
        act("Switched to single-label: each image gets one class.", switch_mode, False)
else:
    st.caption("Single-label: each image gets one class.")
    if st.button("Switch to multi-label", key="mode-multi", help="The existing labels stay valid."):
        act("Switched to multi-label: an image may get several classes.", switch_mode, True)
if engine.multi_label != multi_label:
    st.info("The Label page follows once the project's engine has reloaded (a few seconds).")

st.header("Selection")
current = engine.selection
with st.form("selection"):
    strategy = st.selectbox(
        "Strategy",
        ALL_STRATEGIES,
        index=ALL_STRATEGIES.index(current.strategy),
        help="default: model uncertainty × a mid-range similarity band, with class discovery "
        "while classes have few labels.",
    )
    centre = st.slider(
        "Band centre (quantile of the unlabeled images' similarity to their nearest labeled image)",
        0.05,
        0.95,
        current.config.band_center_quantile,
        0.05,
    )
    fixed = st.number_input(
        "Fixed band centre (cosine similarity; 0 = use the quantile)", 0.0, 1.0, current.config.band_center or 0.0, 0.05
    )
    audit = st.slider("Audit share (random asks that measure accuracy)", 0.0, 0.3, current.config.audit_share, 0.01)
    discovery = st.slider(
        "Discovery share while some class has few labels", 0.0, 1.0, current.config.discovery_share, 0.05
    )
    if st.form_submit_button("Save selection settings"):
        act(
            "Saved; new asks use these settings.",
            engine.set_selection,
            strategy,
            by=annotator(),
            band_center_quantile=centre,
            band_center=fixed or None,
            audit_share=audit,
            discovery_share=discovery,
        )

st.header("Model")
serving = engine.serving
if serving.model_version_id:
    st.caption(
        f"Serving model v{serving.model_version_id}, trained on {serving.metrics.get('trained_labels', 0)} labels."
    )
if engine.last_error:
    st.warning(f"The last retrain failed; the previous model keeps serving. {escape_markdown(engine.last_error)}")
if st.button("Retrain now"):
    engine.retrain_now()
    st.toast("Retraining in the background.")
