"""Failure slices: named neighbourhoods of example images, re-mined and measured after every retrain."""

import plotly.graph_objects as go
import streamlit as st

from app.auth import require
from app.engine_gate import ready_engine
from app.resources import database
from app.safe_text import escape_markdown
from app.user_state import annotator, chosen_project
from core.quality.slices import SliceConfig
from services.data_engine.slices import create_slice, project_slices, record_metrics, resolve_examples
from services.errors import UserError
from services.labeling.session import THUMBNAIL_SIDE
from storage.models import Role

require(Role.ADMIN)  # first: see app/auth.py

COLUMNS = 8
MINED_SHOWN = 16

st.title("Failure slices")
engine = ready_engine()
if done := st.session_state.pop("slices_done", None):
    st.success(escape_markdown(done))

with st.expander("New slice from example images"):
    with st.form("new_slice"):
        name = st.text_input("Name", max_chars=200)
        examples = st.text_area("Example images: item ids or paths relative to the project root, one a line")
        k = st.number_input("Neighbourhood size now (images)", 1, 10_000, SliceConfig().k)
        if st.form_submit_button("Save the slice", type="primary"):
            try:
                ids = resolve_examples(engine, examples.splitlines())
                create_slice(
                    engine, name=name, example_item_ids=ids, created_by=annotator(), config=SliceConfig(k=int(k))
                )
            except UserError as error:
                st.error(escape_markdown(str(error)))
            else:
                st.session_state["slices_done"] = f"Slice {name.strip()} saved."
                st.rerun()
    st.caption("Or open an image on the Explore page and save it as a slice there.")

slices = project_slices(database(), chosen_project())
if not slices:
    st.info("No failure slices yet.")
    st.stop()
if st.button("Measure with the serving model now", disabled=engine.serving.model_version_id is None):
    added, version = record_metrics(engine), engine.serving.model_version_id
    st.session_state["slices_done"] = (
        f"Measured {added} slice{'' if added == 1 else 's'} with model version {version}."
        if added
        else f"Every slice is already measured with model version {version}."
    )
    st.rerun()


def thumbnails(item_ids: list[int]) -> None:
    shown = [i for i in item_ids if i in engine.pool.row_of]
    for start in range(0, len(shown), COLUMNS):
        for column, item in zip(st.columns(COLUMNS), shown[start : start + COLUMNS]):
            column.image(engine.pool.images.get(item, engine.pool.paths[engine.pool.row_of[item]], THUMBNAIL_SIDE))
            column.caption(escape_markdown(engine.pool.paths[engine.pool.row_of[item]]))


for found in slices:
    st.subheader(found.name)
    newest = found.trend[-1] if found.trend else None
    st.caption(
        f"{len(found.example_item_ids)} example(s); neighbourhood: cosine similarity ≥ {found.min_similarity:.3f} "
        f"to an example ({found.k} images when created by {escape_markdown(found.created_by or 'unknown')}); "
        f"backbone {escape_markdown(found.backbone_key)}."
    )
    if newest is not None:
        members, labeled, mined, accuracy = st.columns(4)
        members.metric("Members", newest.n_members)
        labeled.metric("Labeled members", newest.n_labeled)
        mined.metric("Unlabeled members", newest.n_mined)
        accuracy.metric("Accuracy on labeled members", "–" if newest.accuracy is None else f"{newest.accuracy:.0%}")
        measured = [p for p in found.trend if p.accuracy is not None]
        if len(measured) > 1:
            chart = go.Figure(
                go.Scatter(
                    x=[p.model_version_id for p in measured],
                    y=[p.accuracy for p in measured],
                    mode="lines+markers",
                    customdata=[p.n_labeled for p in measured],
                    hovertemplate="version %{x}: %{y:.0%} on %{customdata} members<extra></extra>",
                )
            )
            chart.update_layout(
                xaxis_title="model version",
                yaxis_title="accuracy",
                yaxis_range=[0, 1.05],
                height=220,
                margin=dict(l=0, r=0, t=0, b=0),
            )
            st.plotly_chart(chart, width="stretch", key=f"slice-trend-{found.id}")
    else:
        st.caption("Not measured yet: it is measured with every model version from the next retrain on.")
    st.markdown("**Examples**")
    thumbnails(found.example_item_ids)
    if found.mined_item_ids:
        st.markdown("**Unlabeled members, most uncertain first** (label them on the Grid or Explore page)")
        thumbnails(found.mined_item_ids[:MINED_SHOWN])
