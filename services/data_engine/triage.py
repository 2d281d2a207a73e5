"""Triage report of a batch of new images: near-failures, novel items, near-copies of labeled items.

A batch is the project's unlabeled images under a folder (relative to the project root)
or ingested since a time. Images not embedded yet are embedded first (incrementally,
with the similarity index updated), then each batch image is scored against the labeled
images and the newest stored model of the backbone (``core.quality.triage``); without a stored
model, a probe is fit on the current labels for the report.

:func:`label_next` queues report rows (say, the near-failures) to be asked on the Label
page before the strategy's own picks, in report order (:mod:`services.labeling.priority_asks`);
:func:`waiting_queue` shows what waits and :func:`clear_label_next` withdraws it.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from core.features.embedding_store import EmbeddingStore
from core.features.extract import ExtractConfig
from core.model.probe import LinearProbe
from core.quality.triage import KINDS, TriageConfig, triage
from services.config import Settings
from services.database import Database
from services.engine.model_store import load_latest_model
from services.errors import UserError
from services.features.embeddings import embed
from services.labeling.priority_asks import QueueResult, QueueView, clear_queue, queue_priority_asks, queue_view
from services.output_files import csv_cell, replaced_atomically
from services.projects import get_project
from storage.items import batch_queries, item_queries
from storage.labels import label_queries

CSV_COLUMNS = (
    "path",
    "item_id",
    "kinds",
    "margin",
    "predicted",
    "confidence",
    "nearest_labeled_path",
    "nearest_similarity",
    "would_get",
)


@dataclass(frozen=True)
class TriageRow:
    """One batch image in the report; ``kinds`` is a subset of ``core.quality.triage.KINDS``."""

    item_id: int
    path: str
    kinds: tuple[str, ...]
    margin: float | None
    predicted: str | None
    confidence: float | None
    nearest_path: str | None
    nearest_similarity: float | None
    would_get: str | None  # the near-copy's label: its most similar labeled image's


@dataclass
class TriageReport:
    """A batch's triage, rows in report order (near-failures by ascending margin first).

    ``model`` says where the probabilities came from: ``model version N``, ``fit now on
    L labels``, or ``none`` (fewer than two labeled classes).
    """

    batch: str
    rows: list[TriageRow] = field(default_factory=list)
    embedded_now: int = 0
    model: str = "none"
    n_labeled: int = 0
    novel_threshold: float = float("nan")

    def counts(self) -> dict[str, int]:
        return {kind: sum(kind in row.kinds for row in self.rows) for kind in KINDS}


def parse_since(text: str) -> datetime:
    """An ISO date or date-time (UTC unless it names a zone) -> aware datetime."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"--since {text!r} is not a date or time; write it as 2026-11-26 or 2026-11-26T14:30") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def triage_batch(
    db: Database,
    settings: Settings,
    *,
    project: str,
    backbone: str | None = None,
    folder: str | None = None,
    since: datetime | None = None,
    config: TriageConfig = TriageConfig(),
    extract_config: ExtractConfig = ExtractConfig(),
    on_progress: Callable[[int, int], None] | None = None,
    wait_seconds: float = 0.0,
    on_wait: Callable[[Path], None] | None = None,
) -> TriageReport:
    """Embed what is new, then triage the batch (``folder``, ``since``, both, or every unlabeled image).

    ``backbone``, ``wait_seconds`` and ``on_wait``: as for :func:`services.features.embeddings.embed` (None: the
    project's backbone).

    Raises
    ------
    UserError
        Unknown project or backbone, a folder outside the root, or an empty batch.
    """
    found = get_project(db, project)
    with db.reading() as session:
        candidates = batch_queries.ok_items_since(session, found.id, since)
        current = label_queries.current_labels(session, found.id)
        class_names = {c.id: c.name for c in label_queries.label_classes(session, found.id, include_archived=True)}
    prefix = _folder_prefix(found.root_path, folder) if folder else ""
    labeled = {item: label.class_ids for item, label in current.items() if label.class_ids}
    batch = [(i, p) for i, p in candidates if p.startswith(prefix) and i not in labeled]
    described = " and ".join(
        filter(None, [f"folder {folder}" if folder else "", f"since {since.isoformat()}" if since else ""])
    )
    report = TriageReport(batch=described or "every unlabeled image")
    if not batch:
        raise UserError(
            f"no unlabeled images of project {project!r} in {report.batch} (root {found.root_path}); "
            "ingest the new folder first, or check the folder or time"
        )
    embedded = embed(
        db,
        settings,
        project=project,
        backbone=backbone,
        config=extract_config,
        on_progress=on_progress,
        wait_seconds=wait_seconds,
        on_wait=on_wait,
    )
    report.embedded_now = embedded.embedded
    ids, vectors = EmbeddingStore.open_for_reading(embedded.folder).done()
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)  # float16 storage rounds the norm
    row_of = {int(item): row for row, item in enumerate(ids.tolist())}
    batch = [(i, p) for i, p in batch if i in row_of]  # images that failed to decode have no row
    labeled_items = [i for i in sorted(labeled) if i in row_of]
    report.n_labeled = len(labeled_items)
    batch_x = vectors[[row_of[i] for i, _ in batch]]
    labeled_x = vectors[[row_of[i] for i in labeled_items]].reshape(-1, vectors.shape[1])
    probe, report.model = _model(
        db, settings, found.id, embedded.folder.name, labeled_x, [labeled[i] for i in labeled_items], found.multi_label
    )
    proba = probe.predict_proba(batch_x) if probe is not None else None
    result = triage(batch_x, proba, labeled_x, multi_label=found.multi_label, config=config)
    report.novel_threshold = result.novel_threshold
    with db.reading() as session:
        paths = dict(item_queries.ok_item_paths(session, found.id))
    for position, margin, predicted, nearest, similarity, kinds, would_get in zip(
        result.order.tolist(),
        result.margin.tolist(),
        result.predicted.tolist(),
        result.nearest.tolist(),
        result.similarity.tolist(),
        result.kinds.tolist(),
        result.would_get.tolist(),
    ):
        item_id, path = batch[position]
        nearest_item = labeled_items[nearest] if nearest >= 0 else None
        prediction, confidence = None, None
        if predicted >= 0:
            if probe is None or proba is None:  # triage predicts from the probe's probabilities only
                raise ValueError(f"triage predicted class index {predicted} without a probe")
            prediction = class_names.get(int(probe.classes_[predicted]))
            confidence = float(proba[position, predicted])
        report.rows.append(
            TriageRow(
                item_id=item_id,
                path=path,
                kinds=tuple(k for k, on in zip(KINDS, kinds) if on),
                margin=None if np.isnan(margin) else margin,
                predicted=prediction,
                confidence=confidence,
                nearest_path=paths.get(nearest_item) if nearest_item is not None else None,
                nearest_similarity=None if np.isnan(similarity) else similarity,
                would_get=";".join(class_names[c] for c in labeled[labeled_items[would_get]])
                if would_get >= 0
                else None,
            )
        )
    return report


def _folder_prefix(root: str, folder: str) -> str:
    """``folder`` as a path prefix ``a/b/`` under the root: relative to the root, or (as given to
    ``ingest``) an absolute path or one relative to the working folder."""
    root_path = Path(os.path.realpath(root))
    given = Path(folder)
    if given.is_absolute() or (not (root_path / given).exists() and given.exists()):
        candidate = Path(os.path.realpath(given))
    else:
        candidate = Path(os.path.normpath(root_path / given))
    if not candidate.is_relative_to(root_path):
        raise UserError(f"--batch {folder} is not under the project root {root_path}; give a folder under it")
    relative = candidate.relative_to(root_path).as_posix()
    return "" if relative == "." else relative + "/"


def _model(
    db: Database,
    settings: Settings,
    project_id: int,
    backbone_key: str,
    labeled_x: np.ndarray,
    label_sets: list[tuple[int, ...]],
    multi_label: bool,
) -> tuple[LinearProbe | None, str]:
    stored = load_latest_model(db, settings, project_id=project_id, backbone_key=backbone_key)
    if stored is not None and len(stored[1].classes_) >= 2:
        return stored[1], f"model version {stored[0]}"
    classes = sorted({c for classes in label_sets for c in classes})
    if multi_label or len(classes) < 2:
        return None, "none"
    probe = LinearProbe(n_folds=0).fit(labeled_x, np.asarray([s[0] for s in label_sets], np.int64))
    return probe, f"fit now on {len(label_sets)} labels"


def write_csv(report: TriageReport, path: Path) -> None:
    """Write the report's rows as CSV (columns :data:`CSV_COLUMNS`; kinds ``;``-separated) whole or
    not at all (see :func:`services.output_files.replaced_atomically`); paths and class names a
    spreadsheet would run as formulas get a ``'`` in front (:func:`services.output_files.csv_cell`)."""
    with replaced_atomically(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as handle:
        _write_rows(handle, report)


def csv_text(report: TriageReport) -> str:
    """The CSV of :func:`write_csv` as a string (for a download)."""
    handle = io.StringIO(newline="")
    _write_rows(handle, report)
    return handle.getvalue()


def _write_rows(handle, report: TriageReport) -> None:
    writer = csv.writer(handle)
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        writer.writerow(
            [
                csv_cell(row.path),
                row.item_id,
                ";".join(row.kinds),
                _number(row.margin),
                csv_cell(row.predicted or ""),
                _number(row.confidence),
                csv_cell(row.nearest_path or ""),
                _number(row.nearest_similarity),
                csv_cell(row.would_get or ""),
            ]
        )


def summary_lines(report: TriageReport, *, top: int = 5) -> list[str]:
    """A short text summary: the batch, counts per kind, and the first few of each kind."""
    counts = report.counts()
    lines = [
        f"batch: {report.batch}: {len(report.rows)} unlabeled images ({report.embedded_now} embedded now)",
        f"model: {report.model}; labeled images: {report.n_labeled}",
        "near-failures: {near_failure}, novel: {novel}, near-copies: {near_copy}".format(**counts),
    ]
    for kind, title in (
        ("near_failure", "near-failures (lowest margin first)"),
        ("novel", "novel (least similar to anything labeled first)"),
        ("near_copy", "near-copies (would get the label shown)"),
    ):
        rows = [row for row in report.rows if kind in row.kinds][:top]
        if rows:
            lines.append(f"top {title}:")
            lines += [f"  {_describe(row, kind)}" for row in rows]
    return lines


def _describe(row: TriageRow, kind: str) -> str:
    if kind == "near_failure":
        return f"{row.path}  margin {row.margin:.3f}, predicted {row.predicted}"
    if kind == "novel":
        return f"{row.path}  nearest labeled {row.nearest_path} at {row.nearest_similarity:.3f}"
    return f"{row.path}  -> {row.would_get} (copy of {row.nearest_path}, {row.nearest_similarity:.3f})"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


# ----- "Label these next" ---------------------------------------------------------------


def near_failures(report: TriageReport) -> list[TriageRow]:
    """The report's near-failures, lowest margin first (their report order)."""
    return [row for row in report.rows if "near_failure" in row.kinds]


def label_next(db: Database, *, project: str, rows: Sequence[TriageRow], batch: str = "") -> QueueResult:
    """Queue the images of ``rows`` to be asked on the Label page next, in this order, after any
    queued earlier. Each becomes a pick of source ``triage`` (its margin, when it has one, as
    the score part ``triage_margin``); images queued already or labeled meanwhile are left out.

    Raises
    ------
    UserError
        Unknown project.
    """
    found = get_project(db, project)
    items = [(row.item_id, {} if row.margin is None else {"triage_margin": float(row.margin)}) for row in rows]
    return queue_priority_asks(db, project_id=found.id, items=items, parameters=dict(batch=batch, images=len(items)))


def label_next_message(result: QueueResult, *, what: str = "image") -> str:
    """One line on what :func:`label_next` did, for the page and the CLI; ``what`` is singular."""
    counted = what if result.queued == 1 else what + "s"
    text = (
        f"Queued {result.queued} {counted} to be asked next on the Label page, in report order"
        if result.queued
        else f"Queued no new {what}s"
    )
    notes = []
    if result.already_queued:
        notes.append(f"{result.already_queued} already queued")
    if result.labeled:
        notes.append(f"{result.labeled} labeled already")
    return text + (f" ({', '.join(notes)})" if notes else "") + "."


def waiting_queue(db: Database, *, project: str, first: int = 36) -> QueueView:
    """The project's waiting "Label these next" queue: its size and its first images, in ask order."""
    return queue_view(db, get_project(db, project).id, first=first)


def clear_label_next(db: Database, *, project: str) -> int:
    """Withdraw every image waiting in the project's queue; return how many. Picks stay recorded.

    Raises
    ------
    UserError
        Unknown project.
    """
    return clear_queue(db, get_project(db, project).id)


def clear_queue_message(removed: int) -> str:
    """One line on what :func:`clear_label_next` did, for the page and the CLI."""
    if not removed:
        return 'The "Label these next" queue was empty: nothing to clear.'
    noun = "image" if removed == 1 else "images"
    return (
        f'Cleared the "Label these next" queue: removed {removed} waiting {noun} '
        "(labeled images and what was asked stay recorded)."
    )
