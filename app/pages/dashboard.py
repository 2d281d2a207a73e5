"""Dashboard: labels per class, progress, learning curve, model versions, labeling pace."""

import plotly.graph_objects as go
import streamlit as st

from app.auth import require
from app.feature_note import backbone_caption, show_feature_warning
from app.resources import database, settings
from app.safe_text import escape_markdown, escape_plotly
from app.user_state import chosen_project
from services.data_engine.slices import project_slices
from services.engine.lifecycle import start_engine
from services.errors import UserError
from services.evaluation.dashboard import dashboard, labels_per_minute
from services.evaluation.simulation import random_baseline
from services.projects import get_project
from storage.models import Role

require(Role.ANNOTATOR)  # first: see app/auth.py

MINUTE_MS = 60_000

st.title("Dashboard")
try:
    figures = dashboard(database(), chosen_project())
except UserError as error:
    st.info(escape_markdown(str(error)))
    st.stop()
startup = start_engine(database(), settings(), chosen_project())
if startup.phase == "ready":  # the page shows the stored figures without waiting for the engine
    backbone_caption(startup.engine)
    show_feature_warning(startup.engine)

labeled, total, pace = st.columns(3)
labeled.metric("Labeled images", f"{figures.n_labeled:,}")
total.metric("Images", f"{figures.n_items:,}")
pace.metric(
    "Labels per active minute (all annotators)", f"{sum(labels_per_minute(m) for m in figures.per_minute.values()):.1f}"
)
st.progress(
    figures.n_labeled / figures.n_items if figures.n_items else 0.0,
    text=f"{figures.n_labeled / max(figures.n_items, 1):.1%} of the images are labeled",
)

counts, curve = st.columns(2)
with counts:
    st.subheader("Labels per class")
    if figures.class_counts:
        names = list(figures.class_counts)
        chart = go.Figure(
            go.Bar(x=[figures.class_counts[n] for n in names], y=[escape_plotly(n) for n in names], orientation="h")
        )
        chart.update_layout(
            height=40 + 28 * len(names), margin=dict(l=0, r=0, t=0, b=0), yaxis=dict(autorange="reversed")
        )
        st.plotly_chart(chart, width="stretch")
    else:
        st.caption("No classes yet.")
with curve:
    st.subheader("Learning curve")
    if figures.estimate is not None:
        e = figures.estimate
        st.metric(
            "Accuracy of the newest model (estimate)",
            f"{e.accuracy:.0%}",
            help="90% interval; from the audit answers and the out-of-fold accuracy together",
        )
        st.caption(escape_markdown(f"90% interval {e.low:.0%}–{e.high:.0%}. From: {e.basis}."))
    if figures.curve is None:
        st.caption(
            "Audit asks (about 1 in 20, chosen at random) measure accuracy once a model is serving; "
            "none has been answered yet."
        )
    else:
        c = figures.curve
        chart = go.Figure(
            go.Scatter(
                x=c.n_labels,
                y=c.accuracy,
                mode="lines+markers",
                name="audit accuracy",
                error_y=dict(type="data", symmetric=False, array=c.high - c.accuracy, arrayminus=c.accuracy - c.low),
                customdata=c.n_audits,
                hovertemplate="%{x} labels: %{y:.0%} on %{customdata} audit asks<extra></extra>",
            )
        )
        baseline = random_baseline(settings(), get_project(database(), chosen_project()).root_path)
        if baseline:
            chart.add_trace(
                go.Scatter(
                    x=[b for b, _ in baseline],
                    y=[a for _, a in baseline],
                    mode="lines",
                    line=dict(dash="dash"),
                    name="random sampling (simulator)",
                )
            )
        chart.update_layout(
            xaxis_title="labels the model was trained on",
            yaxis_title="accuracy on audit asks",
            yaxis_range=[0, 1.05],
            height=320,
            margin=dict(l=0, r=0, t=0, b=0),
        )
        st.plotly_chart(chart, width="stretch")
        if not baseline:
            st.caption(
                "Run `python -m app.cli simulate --oracle FOLDER` on a labeled copy of this project's folder "
                "to draw random sampling's curve here."
            )
    if figures.stop is not None:
        last = (
            f" Last window {figures.stop.accuracy:.0%} (90% interval {figures.stop.low:.0%}–{figures.stop.high:.0%})."
            if figures.stop.more_labels is None
            else ""
        )
        st.caption(f"Stop hint: {figures.stop.reason}.{last}")

st.subheader("Labels per minute, per annotator")
if figures.per_minute:
    chart = go.Figure(
        [
            go.Bar(x=[m for m, _ in per], y=[n for _, n in per], name=escape_plotly(name), width=MINUTE_MS * 0.8)
            for name, per in figures.per_minute.items()
        ]
    )
    chart.update_layout(
        barmode="stack",
        xaxis_title="minute",
        yaxis_title="labels",
        xaxis_tickformat="%H:%M",
        height=300,
        margin=dict(l=0, r=0, t=0, b=0),
        showlegend=True,
    )
    st.plotly_chart(chart, width="stretch")
else:
    st.caption("No labels yet.")

st.subheader("Model versions")
if figures.models:
    st.dataframe(
        [
            {
                "version": m.id,
                "trained": m.created_at,
                "labels": m.n_labels,
                "out-of-fold accuracy": m.oof_accuracy,
                "fit seconds": m.fit_seconds,
            }
            for m in reversed(figures.models)
        ],
        hide_index=True,
        width="stretch",
    )
else:
    st.caption("No model yet: one trains once two classes have labels.")

slices = [s for s in project_slices(database(), chosen_project()) if any(p.accuracy is not None for p in s.trend)]
if slices:
    st.subheader("Failure slices: accuracy on labeled members, per model version")
    chart = go.Figure(
        [
            go.Scatter(
                x=[p.n_labels for p in s.trend if p.accuracy is not None],
                y=[p.accuracy for p in s.trend if p.accuracy is not None],
                mode="lines+markers",
                name=escape_plotly(s.name),
            )
            for s in slices
        ]
    )
    chart.update_layout(
        xaxis_title="labels the model was trained on",
        yaxis_title="accuracy (members held out)",
        yaxis_range=[0, 1.05],
        height=300,
        margin=dict(l=0, r=0, t=0, b=0),
        showlegend=True,
    )
    st.plotly_chart(chart, width="stretch")
    st.caption("Each labeled member is predicted by the model refit without it; see the Failure slices page.")
