"""Explore: a 2D map of the images' features, coloured by label or prediction; click a point
to see the image, and find more like it.

The map is PCA (instant) or t-SNE (keeps near neighbours together; computed in a
background thread on a sample of the pool, every labeled image included, while the page
shows that it is waiting)."""

import time

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app.auth import require
from app.engine_gate import ready_engine
from app.safe_text import escape_markdown, escape_plotly
from app.slice_form import save_as_slice
from app.user_state import account
from services.engine.project_engine import ProjectEngine
from services.features.explore import (
    MAP_POINTS,
    TSNE_CONFIG,
    MapJob,
    labeled_mask,
    map_points,
    more_like,
    pca_2d,
    start_tsne_map,
)
from services.labeling.session import THUMBNAIL_SIDE
from storage.models import Role

require(Role.ANNOTATOR)  # first: see app/auth.py

COLUMNS = 6
MAPS = ("PCA", "t-SNE")
AXES = {"PCA": ("PC 1", "PC 2"), "t-SNE": ("t-SNE 1", "t-SNE 2")}


@st.cache_resource(max_entries=4)
def projection(project_id: int, backbone_key: str, n_items: int, _engine: ProjectEngine) -> np.ndarray:
    """PCA map of one project's embeddings; the key changes when the embeddings do."""
    return pca_2d(_engine.pool.embeddings)


@st.cache_resource(max_entries=4, show_spinner=False, validate=lambda job: not job.retry)
def tsne_map(project_id: int, backbone_key: str, n_items: int, _engine: ProjectEngine) -> MapJob:
    """One project's t-SNE map, started in the background on first use; the key changes when the
    embeddings do. A failed map is started again once someone asks (``retry``)."""
    return start_tsne_map(_engine.pool.embeddings, labeled_mask(_engine), TSNE_CONFIG)


@st.fragment(run_every=1)
def _wait_for(job: MapJob) -> None:
    """While the t-SNE map is computed: say so, and run the whole page again once it is done."""
    if job.phase != "running":
        st.rerun(scope="app")
    st.info(
        f"Computing the t-SNE map of {len(job.rows):,} images… "
        f"({time.monotonic() - job.started:.0f} s so far; the map appears here when it is ready. "
        "PCA is available meanwhile.)",
        icon=":material/hourglass_top:",
    )


st.title("Explore")
engine = ready_engine()
kind = st.radio(
    "Map",
    MAPS,
    horizontal=True,
    key="map_kind",
    help="PCA is instant. t-SNE keeps near neighbours together; it is computed in the background "
    f"on at most {TSNE_CONFIG.max_points:,} images (every labeled one included).",
)
colour_by = st.radio("Colour by", ["label", "prediction"], horizontal=True)
key = (engine.project_id, engine.pool.backbone_key, len(engine.pool.item_ids))
if kind == "t-SNE":
    job = tsne_map(*key, engine)
    if job.phase == "running":
        _wait_for(job)
        st.stop()
    if job.phase == "failed":
        st.error(
            f"The t-SNE map could not be made: {escape_markdown(job.error or 'unknown error')}. "
            "The PCA map is shown instead.",
            icon=":material/error:",
        )
        if st.button("Try t-SNE again"):
            job.retry = True
            st.rerun()
        kind = "PCA"
if kind == "t-SNE":
    points = map_points(engine, job.xy, colour_by=colour_by, rows=job.rows)
    sampled = (
        f" ({job.labeled:,} labeled, {len(job.rows) - job.labeled:,} a random sample of the unlabeled)"
        if len(job.rows) < job.total
        else ""
    )
    st.caption(f"t-SNE map of {len(job.rows):,} of {job.total:,} images{sampled}.")
else:
    points = map_points(engine, projection(*key, engine), colour_by=colour_by)
    if len(points.rows) < len(engine.pool.item_ids):
        st.caption(
            f"PCA map of a random {len(points.rows):,} of {len(engine.pool.item_ids):,} images "
            f"(at most {MAP_POINTS:,} are drawn)."
        )
figure = go.Figure()
groups = np.asarray(points.group)
for name in sorted(set(points.group), key=lambda g: (g == "unlabeled", g)):
    members = np.flatnonzero(groups == name)
    figure.add_trace(
        go.Scattergl(
            x=points.xy[members, 0],
            y=points.xy[members, 1],
            mode="markers",
            name=escape_plotly(name),
            customdata=engine.pool.item_ids[points.rows[members]],
            hovertext=[escape_plotly(engine.pool.paths[r]) for r in points.rows[members]],
            hoverinfo="text",
            marker=dict(size=5, color="lightgrey" if name == "unlabeled" else None),
        )
    )
x_title, y_title = AXES[kind]
figure.update_layout(
    height=560, margin=dict(l=0, r=0, t=0, b=0), xaxis_title=x_title, yaxis_title=y_title, dragmode="pan"
)
# One chart key per map: a selection belongs to the figure it was made on.
event = st.plotly_chart(
    figure, width="stretch", on_select="rerun", selection_mode="points", key="map" if kind == "PCA" else "map-tsne"
)

selected = event.selection.points if event and event.selection else []
if not selected:
    st.caption("Click a point to see its image.")
    st.stop()
item_id = int(selected[0]["customdata"] if np.isscalar(selected[0]["customdata"]) else selected[0]["customdata"][0])
picture, about = st.columns([1, 3])
picture.image(engine.pool.images.get(item_id, engine.pool.paths[engine.pool.row_of[item_id]], 2 * THUMBNAIL_SIDE))
with about:
    st.text(engine.pool.paths[engine.pool.row_of[item_id]])
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
                st.image(engine.pool.images.get(other, engine.pool.paths[engine.pool.row_of[other]], THUMBNAIL_SIDE))
                st.caption(f"{escape_markdown(engine.pool.paths[engine.pool.row_of[other]])} · {similarity:.2f}")
