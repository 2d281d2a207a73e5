"""Choose the next images to label without the app, for teams that label in another tool.

The same path as the app's: embed what is not embedded yet, a project engine (current
labels, the newest stored model if it was trained on them, else a retrain that is stored
as a new model version), then one call of :func:`core.selection.selection.select` through
:meth:`ProjectEngine.next_asks`, recorded as a selection run whose picks carry their
score parts. The picks are not leased: they are labeled in another tool.

Images waiting in the Triage "Label these next" queue (:mod:`services.labeling.priority_asks`) are
taken first, in queue order, as picks of source ``triage`` ranked before the strategy's
(which fill the rest); in the same transaction they are withdrawn from the queue, so the
Label page no longer asks them first. Like every pick of ``select`` they are not held
from the app's labelers: the Label page's strategy may still choose one before its label
is imported. ``queue=False`` leaves the queue alone.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from core.features.extract import ExtractConfig
from core.selection.selection import ALL_STRATEGIES, PART_NAMES
from services.config import Settings
from services.database import Database
from services.engine.lifecycle import build_engine
from services.engine.project_engine import Ask, ProjectEngine, SelectionSettings, recorded_prediction
from services.errors import UserError
from services.features.embeddings import embed
from services.output_files import csv_cell
from services.projects import get_project, project_counts
from services.transfer import label_studio
from storage.labels import label_queries, priority_queries
from storage.labels.priority_queries import TRIAGE, PendingPick
from storage.models import Pick
from storage.types import utc_now

CSV_COLUMNS = ("rank", "path", "item_id", "source", "predicted", "probability", *PART_NAMES)


@dataclass(frozen=True)
class PickRow:
    """One chosen image: rank (1 = ask first), the rule that chose it, the serving model's
    predicted classes and its probability of the most probable class (NaN without a model),
    and the score parts that apply."""

    rank: int
    item_id: int
    path: str
    source: str
    predicted: tuple[str, ...]
    probability: float
    score_parts: dict[str, float]


@dataclass(frozen=True)
class HeadlessSelection:
    """A recorded selection run and its picks, best first.

    ``model_version_id`` is the model that scored them (None before two classes are
    labeled); ``model_error`` says why a retrain failed, when it did.
    """

    selection_run_id: int
    project_root: str
    strategy: str
    model_version_id: int | None
    n_labeled: int
    n_unlabeled: int
    embedded_now: int
    picks: list[PickRow]
    model_error: str | None = None


def check_request(n: int, strategy: str) -> None:
    """The arguments' checks, before any work."""
    if n < 1:
        raise UserError(f"--n must be a positive number of images, got {n}")
    if strategy not in ALL_STRATEGIES:
        raise UserError(f"unknown strategy {strategy!r}; choose one of {', '.join(ALL_STRATEGIES)}")


def select_images(
    db: Database,
    settings: Settings,
    *,
    project: str,
    n: int,
    strategy: str = "default",
    extract: ExtractConfig = ExtractConfig(),
    show_progress: bool = False,
    queue: bool = True,
    wait_seconds: float = 0.0,
    on_wait: Callable[[Path], None] | None = None,
) -> HeadlessSelection:
    """Choose up to ``n`` unlabeled images of ``project`` and record the run: first the images
    waiting in the Triage queue (unless ``queue`` is False), then ``strategy``'s picks.

    The strategy applies to this run only; the app's selection settings are not changed.
    New images are embedded first (``wait_seconds`` and ``on_wait`` as for
    :func:`services.features.embeddings.embed`).
    """
    check_request(n, strategy)
    found = get_project(db, project)
    if project_counts(db, found).ok == 0:
        raise UserError(
            f"project {project!r} has no images; ingest some first: python -m app.cli ingest FOLDER --project {project}"
        )
    embedded = embed(
        db,
        settings,
        project=project,
        config=extract,
        show_progress=show_progress,
        wait_seconds=wait_seconds,
        on_wait=on_wait,
    )
    engine = build_engine(db, settings, found.name, embedded.folder)
    try:
        engine.loop.wait_idle()  # the retrain on the current labels, if the stored model is older
        engine.selection = SelectionSettings(strategy, engine.selection.config)  # this run only, not saved
        queued = _waiting(db, engine, n) if queue else []
        asks = (
            engine.next_asks(
                n - len(queued),
                claim=lambda item_ids: item_ids,  # not leased: labeled elsewhere
                exclude={pick.item_id for pick in queued},
            )
            if len(queued) < n
            else []
        )
        asks = _hand_out(db, engine, queued, asks, strategy) + asks
        if not asks:
            raise UserError(f"project {project!r} has no unlabeled embedded images left to choose from")
        return _result(db, engine, asks, strategy, embedded.embedded, found.root_path)
    finally:
        engine.close()


def _waiting(db: Database, engine: ProjectEngine, n: int) -> list[PendingPick]:
    """The first ``n`` waiting queued images that are in the engine's pool and unlabeled there."""
    with db.reading() as session:
        waiting = priority_queries.pending(session, engine.project_id)
    usable = [
        pick
        for pick in waiting
        if pick.item_id in engine.pool.row_of and not getattr(engine.current_label(pick.item_id), "class_ids", None)
    ]
    return usable[:n]


def _hand_out(
    db: Database, engine: ProjectEngine, queued: list[PendingPick], asks: list[Ask], strategy: str
) -> list[Ask]:
    """Record the queued images as picks of source ``triage`` ranked before ``asks`` (in their run,
    or in a run of their own when the strategy chose nothing) and withdraw them from the queue,
    in one transaction. Returns their asks, in queue order."""
    if not queued:
        return []
    serving = engine.serving
    predicted = _recorded_predictions(engine, np.asarray([engine.pool.row_of[pick.item_id] for pick in queued]))
    picks: list[dict[str, Any]] = [  # column values of Pick rows
        dict(item_id=pick.item_id, score_parts=dict(pick.score_parts), source=TRIAGE, predicted=classes)
        for pick, classes in zip(queued, predicted)
    ]
    with db.writing() as session:
        if asks:
            run_id = _selection_run_id(session, asks[0].pick_id)
            pick_ids = priority_queries.put_first(session, run_id, picks)
        else:
            _, pick_ids = label_queries.add_selection_run(
                session,
                project_id=engine.project_id,
                model_version_id=serving.model_version_id,
                strategy=strategy,
                parameters=dict(queue=len(picks)),
                picks=picks,
            )
        priority_queries.withdraw(session, engine.project_id, now=utc_now(), item_ids=[pick.item_id for pick in queued])
    band = asks[0].band if asks else None
    return [
        Ask(
            item_id=pick["item_id"],
            path=engine.pool.paths[engine.pool.row_of[pick["item_id"]]],
            pick_id=pick_id,
            source=TRIAGE,
            score_parts=pick["score_parts"],
            predicted=tuple(pick["predicted"] or ()),
            model_version_id=serving.model_version_id,
            band=band,
        )
        for pick, pick_id in zip(picks, pick_ids)
    ]


def _selection_run_id(session: Session, pick_id: int) -> int:
    pick = session.get(Pick, pick_id)
    if pick is None:
        raise LookupError(f"no pick with id {pick_id}")
    return pick.selection_run_id


def _recorded_predictions(engine: ProjectEngine, rows: np.ndarray) -> list[list[int] | None]:
    """The serving probe's prediction for pool ``rows`` as a strategy pick records it (``Pick.predicted``).

    :meth:`core.model.probe.LinearProbe.predict` (multi-label: probability >= 0.5 per class) recorded by
    :func:`services.engine.project_engine.recorded_prediction`, as strategy picks are, so a queued image handed
    out here reads like a strategy pick of the same run.

    Returns
    -------
    list of (list of int or None)
        Per row: single-label, ``[most probable class id]``; multi-label, the class ids at or
        above the threshold (possibly none). None per row without a probe that knows a class.
    """
    probe = engine.serving.probe
    if probe is None or len(probe.classes_) == 0:
        return [None] * len(rows)
    return [
        recorded_prediction(value, probe, multi_label=engine.multi_label)
        for value in probe.predict(engine.pool.embeddings[rows])
    ]


def _result(
    db: Database, engine: ProjectEngine, asks: list, strategy: str, embedded_now: int, root: str
) -> HeadlessSelection:
    rows = np.asarray([engine.pool.row_of[ask.item_id] for ask in asks])
    predictions = engine.predictions(rows)
    probability = predictions[1] if predictions is not None else np.full(len(asks), math.nan)
    with db.reading() as session:
        run_id = _selection_run_id(session, asks[0].pick_id)
    picks = [
        PickRow(
            rank,
            ask.item_id,
            ask.path,
            ask.source,
            tuple(engine.classes[c].name for c in ask.predicted),
            float(probability[rank - 1]),
            ask.score_parts,
        )
        for rank, ask in enumerate(asks, start=1)
    ]
    n_labeled = len(engine.labeled_items())
    return HeadlessSelection(
        selection_run_id=run_id,
        project_root=root,
        strategy=strategy,
        model_version_id=asks[0].model_version_id,
        n_labeled=n_labeled,
        n_unlabeled=len(engine.pool.item_ids) - n_labeled,
        embedded_now=embedded_now,
        picks=picks,
        model_error=engine.last_error,
    )


def picks_csv(selection: HeadlessSelection) -> str:
    """The picks as CSV: :data:`CSV_COLUMNS`, predicted classes ``;``-separated, empty where a part does not
    apply; a path or class names a spreadsheet would run as a formula get a ``'`` in front
    (:func:`services.output_files.csv_cell`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for pick in selection.picks:
        parts = [_number(pick.score_parts.get(name, math.nan)) for name in PART_NAMES]
        writer.writerow(
            [
                pick.rank,
                csv_cell(pick.path),
                pick.item_id,
                pick.source,
                csv_cell(";".join(pick.predicted)),
                _number(pick.probability),
                *parts,
            ]
        )
    return buffer.getvalue()


def picks_tasks(selection: HeadlessSelection, *, image_prefix: str | None = None) -> str:
    """The picks as Label Studio tasks, in rank order, the model's predicted classes as pre-annotations
    (``model_version`` ``banana-model-<id>``, which ``import-labels`` never reads as labels)."""
    prefix = image_prefix if image_prefix is not None else label_studio.default_image_prefix(selection.project_root)
    return label_studio.to_tasks(
        [(pick.path, pick.predicted) for pick in selection.picks],
        image_prefix=prefix,
        model_version=f"banana-model-{selection.model_version_id}",
        scores=[pick.probability for pick in selection.picks],
    )


def _number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6g}"
