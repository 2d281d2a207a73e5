"""Explore: a 2D map of the images' features, coloured by label or prediction; click a point
to see the image, and find more like it."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app.auth import require
from app.engine_gate import ready_engine
from app.safe_text import escape_markdown, escape_plotly
from app.slice_form import save_as_slice
from app.user_state import account
from services.engine import ProjectEngine
from services.explore import map_points, more_like, pca_2d
from services.labeling import THUMBNAIL_SIDE
from storage.models import Role

require(Role.ANNOTATOR)  # first: see app/auth.py

COLUMNS = 6


@st.cache_resource(max_entries=4)
def projection(project_id: int, backbone_key: str, n_items: int, _engine: ProjectEngine) -> np.ndarray:
    """PCA map of one project's embeddings; the key changes when the embeddings do."""
    return pca_2d(_engine.embeddings)


st.title("Explore")
engine = ready_engine()
colour_by = st.radio("Colour by", ["label", "prediction"], horizontal=True)
points = map_points(engine, projection(engine.project_id, engine.backbone_key, len(engine.item_ids), engine),
                    colour_by=colour_by)
figure = go.Figure()
groups = np.asarray(points.group)
for name in sorted(set(points.group), key=lambda g: (g == "unlabeled", g)):
    members = np.flatnonzero(groups == name)
    figure.add_trace(go.Scattergl(
        x=points.xy[members, 0], y=points.xy[members, 1], mode="markers", name=escape_plotly(name),
        customdata=engine.item_ids[points.rows[members]],
        hovertext=[escape_plotly(engine.paths[r]) for r in points.rows[members]], hoverinfo="text",
        marker=dict(size=5, color="lightgrey" if name == "unlabeled" else None)))
figure.update_layout(height=560, margin=dict(l=0, r=0, t=0, b=0), xaxis_title="PC 1", yaxis_title="PC 2",
                     dragmode="pan")
event = st.plotly_chart(figure, width="stretch", on_select="rerun", selection_mode="points", key="map")

selected = event.selection.points if event and event.selection else []
if not selected:
    st.caption("Click a point to see its image.")
    st.stop()
item_id = int(selected[0]["customdata"] if np.isscalar(selected[0]["customdata"]) else selected[0]["customdata"][0])
picture, about = st.columns([1, 3])
picture.image(engine.images.get(item_id, engine.paths[engine.row_of[item_id]], 2 * THUMBNAIL_SIDE))
with about:
    st.text(engine.paths[engine.row_of[item_id]])
    label = engine.current_label(item_id)
    names = ", ".join(engine.classes[c].name for c in label.class_ids) if label and label.class_ids else "unlabeled"
    st.caption(f"Label: {escape_markdown(names)}")
    find = st.button("Find more like this")
    if account().can(Role.ADMIN):
        save_as_slice(engine, item_id)
if find:
    similar = more_like(engine, item_id)
    for start in range(0, len(similar), COLUMNS):
        for column, (other, similarity) in zip(st.columns(COLUMNS), similar[start : start + COLUMNS]):
            with column:
                st.image(engine.images.get(other, engine.paths[engine.row_of[other]], THUMBNAIL_SIDE))
                st.caption(f"{escape_markdown(engine.paths[engine.row_of[other]])} · {similarity:.2f}")
