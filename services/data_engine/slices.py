"""Failure slices: create one from example items, re-mine and measure it after every retrain.

A slice lives in the database (``storage.slices.slice_models``); its members are computed from a
project engine's embeddings with the slice's rule (``core.quality.slices``). :func:`after_model`
runs after every retrain (``services.engine.after_model``): for each slice it records the new
model version's accuracy on the labeled members (each predicted by a refit that did not
see it), the member counts, and the unlabeled members ranked by the model's uncertainty.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.exc import IntegrityError

from core.quality.slices import (
    SliceConfig,
    accuracy,
    heldout_member_predictions,
    remine,
    similarity_to_examples,
    threshold_for_k,
    uncertainty_of,
)
from services.database import Database
from services.errors import UserError
from services.projects import get_project
from storage.labels import label_queries
from storage.slices import slice_queries

if TYPE_CHECKING:
    from services.engine.project_engine import ProjectEngine


@dataclass(frozen=True)
class SliceMeasure:
    """A slice measured with one model: see :class:`storage.slices.slice_models.FailureSliceMetric`."""

    n_members: int
    n_labeled: int
    n_mined: int
    accuracy: float | None
    mined_item_ids: list[int]


@dataclass(frozen=True)
class SlicePoint:
    """One model version's figures for a slice."""

    model_version_id: int
    n_labels: int  # labels the version was trained on
    trained_at: datetime
    accuracy: float | None
    n_labeled: int
    n_members: int
    n_mined: int


@dataclass(frozen=True)
class SliceSummary:
    """A slice, its examples, and its figures per model version (oldest first)."""

    id: int
    name: str
    backbone_key: str
    k: int
    min_similarity: float
    created_by: str | None
    created_at: datetime
    example_item_ids: list[int]
    trend: list[SlicePoint]
    mined_item_ids: list[int]  # from the newest version


def create_slice(
    engine: ProjectEngine,
    *,
    name: str,
    example_item_ids: list[int],
    created_by: str | None = None,
    config: SliceConfig = SliceConfig(),
) -> int:
    """Save a slice around the example items and measure it with the serving model; return its id.

    The neighbourhood threshold is the similarity of the ``config.k``-th nearest item now.

    Raises
    ------
    UserError
        An empty or taken name, no examples, or an example without an embedding.
    """
    name = name.strip()
    if not name:
        raise UserError("slice name is empty; type a name")
    examples = sorted(set(int(i) for i in example_item_ids))
    if not examples:
        raise UserError("a slice needs at least one example image")
    missing = [i for i in examples if i not in engine.pool.row_of]
    if missing:
        raise UserError(
            f"item {missing[0]} has no {engine.pool.backbone_key} embedding; run `python -m app.cli embed` "
            "and restart the app, or choose another example"
        )
    similarity = similarity_to_examples(
        engine.pool.embeddings,
        engine.pool.embeddings[[engine.pool.row_of[i] for i in examples]],
        block_rows=config.block_rows,
    )
    threshold = threshold_for_k(similarity, max(config.k, len(examples)))
    try:
        with engine.db.writing() as session:
            if slice_queries.find_slice(session, engine.project_id, name) is not None:
                raise UserError(
                    f"project {engine.project_name!r} already has a slice called {name!r}; choose another name"
                )
            slice_id = slice_queries.add_slice(
                session,
                project_id=engine.project_id,
                name=name,
                backbone_key=engine.pool.backbone_key,
                k=config.k,
                min_similarity=threshold,
                created_by=created_by,
                example_item_ids=examples,
            ).id
    except IntegrityError:  # created by someone else at the same moment
        raise UserError(
            f"project {engine.project_name!r} already has a slice called {name!r}; choose another name"
        ) from None
    record_metrics(engine, slice_ids=[slice_id], config=config)
    return slice_id


def resolve_examples(engine: ProjectEngine, references: list[str]) -> list[int]:
    """Item ids of example references: item ids, or paths relative to the project root.

    Raises
    ------
    UserError
        Naming the first reference that is no embedded image of the project.
    """
    by_path = {path: int(item) for item, path in zip(engine.pool.item_ids.tolist(), engine.pool.paths)}
    found = []
    for reference in (r.strip() for r in references):
        if not reference:
            continue
        item = int(reference) if reference.isdigit() else by_path.get(reference.removeprefix("./"))
        if item is None or item not in engine.pool.row_of:
            raise UserError(
                f"{reference!r} is no embedded image of project {engine.project_name!r}; give an item id "
                "or a path relative to the project root"
            )
        found.append(item)
    return found


def measure(
    engine: ProjectEngine,
    *,
    examples: list[int],
    min_similarity: float,
    config: SliceConfig = SliceConfig(),
    probe=None,
) -> SliceMeasure | None:
    """Members, labeled members, mined members and accuracy with ``probe`` (default: the serving
    model); None when no example has an embedding in the engine."""
    rows = [engine.pool.row_of[i] for i in examples if i in engine.pool.row_of]
    if not rows:
        return None
    similarity = similarity_to_examples(
        engine.pool.embeddings, engine.pool.embeddings[rows], block_rows=config.block_rows
    )
    labels = _current_labels(engine)
    labeled = np.zeros(len(engine.pool.item_ids), bool)
    labeled[[engine.pool.row_of[i] for i in labels]] = True
    members = similarity >= min_similarity
    probe = engine.serving.probe if probe is None else probe
    usable = probe is not None and len(probe.classes_) >= 2
    uncertainty = None
    if usable:
        uncertainty = np.zeros(len(similarity))
        candidates = np.flatnonzero(members & ~labeled)
        if len(candidates):
            uncertainty[candidates] = uncertainty_of(
                probe.predict_proba(engine.pool.embeddings[candidates]), multi_label=engine.multi_label
            )
    mined = remine(similarity, min_similarity, uncertainty, labeled)
    value = None
    if usable and (members & labeled).any():
        value = _heldout_accuracy(engine, probe, labels, members, config)
    return SliceMeasure(
        n_members=int(members.sum()),
        n_labeled=int((members & labeled).sum()),
        n_mined=len(mined),
        accuracy=value,
        mined_item_ids=engine.pool.item_ids[mined[: config.top_mined]].tolist(),
    )


def _current_labels(engine: ProjectEngine) -> dict[int, tuple[int, ...]]:
    """Item -> class ids of every labeled item (read one by one; a label cleared meanwhile is left out)."""
    labels = {item: engine.current_label(item) for item in engine.labeled_items()}
    return {item: label.class_ids for item, label in labels.items() if label is not None and label.class_ids}


def _heldout_accuracy(
    engine: ProjectEngine, probe, labels: dict[int, tuple[int, ...]], members: np.ndarray, config: SliceConfig
) -> float:
    """Accuracy of the slice's labeled members, each predicted by ``probe`` refit without it;
    multi-label: the share whose predicted class set is exactly the given one."""
    items = list(labels)
    rows = np.asarray([engine.pool.row_of[i] for i in items], np.int64)
    classes = None
    if engine.multi_label:  # an indicator over every class the probe or a label knows
        classes = np.union1d(probe.classes_, [c for i in items for c in labels[i]]).astype(np.int64)
        y = np.zeros((len(items), len(classes)), np.int8)
        for row, item in enumerate(items):
            y[row, np.searchsorted(classes, labels[item])] = 1
    else:
        y = np.asarray([labels[i][0] for i in items], np.int64)
    positions = np.flatnonzero(members[rows])
    predicted = heldout_member_predictions(
        probe, engine.pool.embeddings[rows], y, positions, n_folds=config.accuracy_folds, classes=classes
    )
    return accuracy(y[positions], predicted)


def record_metrics(
    engine: ProjectEngine, *, slice_ids: list[int] | None = None, config: SliceConfig = SliceConfig()
) -> int:
    """Measure the project's slices (or ``slice_ids``) with the serving model version and store
    one metric row per slice; slices already measured with it are skipped. Returns rows added."""
    serving = engine.serving  # one read: a retrain may swap it meanwhile
    version_id = serving.model_version_id
    if version_id is None:
        return 0
    with engine.db.reading() as session:
        slices = [
            s
            for s in slice_queries.project_slices(session, engine.project_id)
            if s.backbone_key == engine.pool.backbone_key
            and (slice_ids is None or s.id in slice_ids)
            and not slice_queries.has_metric(session, s.id, version_id)
        ]
        examples = slice_queries.slice_examples(session, [s.id for s in slices])
        rules = [(s.id, s.min_similarity) for s in slices]
    added = 0
    for slice_id, min_similarity in rules:
        found = measure(
            engine, examples=examples[slice_id], min_similarity=min_similarity, config=config, probe=serving.probe
        )
        if found is None:
            continue
        try:
            with engine.db.writing() as session:
                slice_queries.add_metric(session, slice_id=slice_id, model_version_id=version_id, values=asdict(found))
            added += 1
        except IntegrityError:  # measured meanwhile by another caller
            pass
    return added


def after_model(engine: ProjectEngine) -> None:
    """After-model hook: re-mine and measure every slice with the version now serving."""
    record_metrics(engine)


def project_slices(db: Database, project_name: str) -> list[SliceSummary]:
    """Every slice of the project with its trend, oldest slice first."""
    project = get_project(db, project_name)
    with db.reading() as session:
        slices = slice_queries.project_slices(session, project.id)
        ids = [s.id for s in slices]
        examples = slice_queries.slice_examples(session, ids)
        metrics = slice_queries.slice_metrics(session, ids)
        versions = {v.id: v for v in label_queries.model_versions(session, project.id)}
        summaries = []
        for s in slices:
            trend = [
                SlicePoint(
                    m.model_version_id,
                    versions[m.model_version_id].n_labels,
                    versions[m.model_version_id].created_at,
                    m.accuracy,
                    m.n_labeled,
                    m.n_members,
                    m.n_mined,
                )
                for m in metrics[s.id]
            ]
            newest = metrics[s.id][-1].mined_item_ids if metrics[s.id] else []
            summaries.append(
                SliceSummary(
                    s.id,
                    s.name,
                    s.backbone_key,
                    s.k,
                    s.min_similarity,
                    s.created_by,
                    s.created_at,
                    examples[s.id],
                    trend,
                    list(newest),
                )
            )
    return summaries
