"""Triage: a report on a batch of new images (near-failures, novel images, near-copies).

The batch is the unlabeled images under a folder of the project root and/or ingested
since a day; images not embedded yet are embedded first. Same report as
``python -m app.cli triage``. "Label these next" queues the images shown under the kind
filter to be asked on the Label page before the strategy's own picks, in report order;
the page's foot shows the waiting queue in ask order, and "Clear the queue" withdraws it.
"""

from datetime import UTC, datetime

import streamlit as st

from app.auth import require
from app.engine_gate import ready_engine
from app.feature_note import show_feature_warning
from app.resources import database, settings
from app.safe_text import escape_markdown
from app.user_state import chosen_project
from core.quality.triage import KINDS
from services.data_engine.triage import (
    clear_label_next,
    clear_queue_message,
    csv_text,
    label_next,
    label_next_message,
    triage_batch,
    waiting_queue,
)
from services.engine.lifecycle import APP_EXTRACT_CONFIG, APP_STORE_WAIT_SECONDS
from services.errors import UserError
from services.labeling.session import THUMBNAIL_SIDE
from storage.models import Role

require(Role.ADMIN)  # first: see app/auth.py

COLUMNS = 6
SHOWN = 36
REPORT = "triage_report"  # (project name, report)
KIND_TEXT = {"near_failure": "near-failure", "novel": "novel", "near_copy": "near-copy"}

st.title("Triage a batch of new images")
engine = ready_engine()  # serves the thumbnails
show_feature_warning(engine)
st.caption(
    "Ingest the new folder first (`python -m app.cli ingest FOLDER`); images not embedded yet are embedded here."
)
with st.form("triage"):
    folder = st.text_input("Folder, relative to the project root (empty: anywhere)", key="triage_folder")
    use_since = st.checkbox("Only images ingested since", key="triage_use_since")
    since_day = st.date_input("Since (UTC day)", key="triage_since")
    run = st.form_submit_button("Triage", type="primary")
if run:
    since = datetime.combine(since_day, datetime.min.time(), tzinfo=UTC) if use_since else None
    progress = st.progress(0.0, text="Embedding new images…")
    try:
        report = triage_batch(
            database(),
            settings(),
            project=chosen_project(),
            folder=folder.strip() or None,
            since=since,
            extract_config=APP_EXTRACT_CONFIG,
            on_progress=lambda done, total: progress.progress(done / total if total else 1.0),
            wait_seconds=APP_STORE_WAIT_SECONDS,
            on_wait=lambda _: progress.progress(
                0.0, text="Waiting for another process to finish writing the embeddings…"
            ),
        )
    except UserError as error:
        st.error(escape_markdown(str(error)))
        st.stop()
    finally:
        progress.empty()
    st.session_state[REPORT] = (chosen_project(), report)


def show_report(report) -> None:
    """The report's counts, download, kind filter, \"Label these next\" and thumbnails."""
    counts = report.counts()
    batch, failures, novel, copies = st.columns(4)
    batch.metric("Unlabeled images in the batch", f"{len(report.rows):,}")
    failures.metric("Near-failures", f"{counts['near_failure']:,}")
    novel.metric("Novel", f"{counts['novel']:,}")
    copies.metric("Near-copies", f"{counts['near_copy']:,}")
    st.caption(
        f"Batch: {escape_markdown(report.batch)}. Model: {escape_markdown(report.model)}; "
        f"{report.n_labeled:,} labeled images; {report.embedded_now:,} images embedded now."
    )
    st.download_button("Download the report (CSV)", csv_text(report), file_name="triage.csv", mime="text/csv")

    chosen = st.multiselect("Kinds", KINDS, default=list(KINDS), format_func=KIND_TEXT.get, key="triage_kinds")
    rows = [row for row in report.rows if set(row.kinds) & set(chosen)]
    queue_column, note_column = st.columns([1, 3], vertical_alignment="center")
    if queue_column.button(
        "Label these next",
        key="triage_label_next",
        disabled=not rows,
        help="Ask these images on the Label page before the strategy's own picks, in this order",
    ):
        try:
            queued = label_next(database(), project=chosen_project(), rows=rows, batch=report.batch)
        except UserError as error:
            st.error(escape_markdown(str(error)))
        else:
            st.success(escape_markdown(label_next_message(queued)))
    note_column.caption(
        f"{len(rows):,} images under the kind filter, in report order. They are asked before the "
        "strategy's own picks, each of one annotator; images labeled meanwhile are skipped."
    )
    st.dataframe(
        [
            {
                "path": row.path,
                "kinds": ", ".join(KIND_TEXT[k] for k in row.kinds),
                "margin": row.margin,
                "predicted": row.predicted,
                "nearest labeled": row.nearest_path,
                "similarity": row.nearest_similarity,
                "would get": row.would_get,
            }
            for row in rows
        ],
        hide_index=True,
        width="stretch",
    )
    for start in range(0, min(len(rows), SHOWN), COLUMNS):
        for column, row in zip(st.columns(COLUMNS), rows[start : start + COLUMNS]):
            with column:
                st.image(engine.pool.images.get(row.item_id, row.path, THUMBNAIL_SIDE))
                detail = (
                    f"margin {row.margin:.2f}"
                    if "near_failure" in row.kinds and row.margin is not None
                    else f"→ {row.would_get}"
                    if row.would_get
                    else f"similarity {row.nearest_similarity:.2f}"
                    if row.nearest_similarity is not None
                    else ""
                )
                st.caption(f"{escape_markdown(row.path)} · {escape_markdown(detail)}")


def show_queue() -> None:
    """The waiting "Label these next" queue, in ask order, and "Clear the queue"."""
    st.subheader("Label these next: the queue")
    view = waiting_queue(database(), project=chosen_project(), first=SHOWN)
    count_column, clear_column = st.columns([1, 3], vertical_alignment="center")
    if clear_column.button(
        "Clear the queue",
        key="triage_clear_queue",
        disabled=not view.waiting,
        help="Withdraw every waiting image: it is no longer asked first. Labeled images and what "
        "was asked stay recorded; an image already shown to an annotator can still be labeled",
    ):
        try:
            removed = clear_label_next(database(), project=chosen_project())
        except UserError as error:
            st.error(escape_markdown(str(error)))
        else:
            st.success(escape_markdown(clear_queue_message(removed)))
        view = waiting_queue(database(), project=chosen_project(), first=SHOWN)
    count_column.metric("Images waiting", f"{view.waiting:,}")
    if not view.waiting:
        st.caption('No images wait in the queue. "Label these next" on a triage report queues its images.')
        return
    more = f"; the first {len(view.first):,} below" if view.waiting > len(view.first) else ""
    st.caption(
        f"{view.waiting:,} images wait, asked on the Label page before the strategy's own picks, in this "
        f"order{more}. Images labeled anywhere leave the queue; so do images handed out by "
        "`python -m app.cli select`."
    )
    for start in range(0, len(view.first), COLUMNS):
        for column, pick in zip(st.columns(COLUMNS), view.first[start : start + COLUMNS]):
            with column:
                st.image(engine.pool.images.get(pick.item_id, pick.path, THUMBNAIL_SIDE))
                margin = pick.score_parts.get("triage_margin")
                detail = f" · margin {margin:.2f}" if margin is not None else ""
                st.caption(f"{escape_markdown(pick.path)}{detail}")


stored = st.session_state.get(REPORT)
if stored is not None and stored[0] == chosen_project():
    show_report(stored[1])
show_queue()
