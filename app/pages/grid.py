"""Grid: many images at once. Uncheck the wrong ones, label the rest in one action."""

import streamlit as st

from app.auth import require
from app.engine_gate import ready_engine
from app.safe_text import escape_markdown
from app.user_state import annotator
from services.errors import UserError
from services.labeling.grid import GRID_SIZE, NEAR_COPY_SIMILARITY, accept, near_copies, predicted_members
from services.labeling.session import THUMBNAIL_SIDE
from storage.models import Role

require(Role.ANNOTATOR)  # first: see app/auth.py

COLUMNS = 6
RECENT_SOURCES = 100  # labeled images offered as the source of near-copies

st.title("Grid")
engine = ready_engine()
classes = engine.active_classes()
if not classes:
    st.info("Add classes first, on the Label page (press N) or under Classes and settings.")
    st.stop()

done = st.session_state.pop("grid_done", None)
if done:
    st.success(escape_markdown(done))

mode = st.radio("Show", ["Images the model puts in one class", "Near-copies of a labeled image"], horizontal=True)
if mode.startswith("Images"):
    target = st.selectbox("Class", classes, format_func=lambda c: c.name)
    candidates = predicted_members(engine, target.id, GRID_SIZE)
    if not candidates and engine.serving.probe is None:
        st.info("No model yet: it trains once two classes have labels.")
else:
    labeled = engine.labeled_items()[-RECENT_SOURCES:][::-1]
    if not labeled:
        st.info("Label an image first; its near-copies show here.")
        st.stop()
    source = st.selectbox(
        "Labeled image", labeled, format_func=lambda item: engine.pool.paths[engine.pool.row_of[item]]
    )
    min_similarity = st.slider("Least similarity", 0.5, 1.0, NEAR_COPY_SIMILARITY, 0.01)
    st.image(engine.pool.images.get(source, engine.pool.paths[engine.pool.row_of[source]], THUMBNAIL_SIDE))
    target_id = engine.current_label(source).class_ids[0]
    target = engine.classes[target_id]
    candidates = near_copies(engine, source, GRID_SIZE, min_similarity)

if not candidates:
    st.caption("No unlabeled images to show.")
    st.stop()

with st.form("grid"):
    st.caption("Uncheck the images that do not belong, then label the rest.")
    for start in range(0, len(candidates), COLUMNS):
        for column, candidate in zip(st.columns(COLUMNS), candidates[start : start + COLUMNS]):
            with column:
                st.image(engine.pool.images.get(candidate.item_id, candidate.path, THUMBNAIL_SIDE))
                st.checkbox(
                    f"{escape_markdown(candidate.path)} · {candidate.score:.2f}",
                    value=True,
                    key=f"grid-{candidate.item_id}",
                )
    submitted = st.form_submit_button(f"Label the checked images as {escape_markdown(target.name)}", type="primary")

if submitted:
    chosen = [c.item_id for c in candidates if st.session_state.get(f"grid-{c.item_id}")]
    try:
        accept(engine, item_ids=chosen, class_id=target.id, annotator=annotator())
    except UserError as error:
        st.error(escape_markdown(str(error)))
    else:
        st.session_state["grid_done"] = f"Labeled {len(chosen)} images as {target.name}."
        st.rerun()
