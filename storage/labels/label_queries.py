"""Queries behind labeling: current labels, classes, selection runs, model versions.

Each takes a Session and never commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Result, func, select
from sqlalchemy.orm import Session

from storage.models import (
    Annotation,
    AnnotationSource,
    Annotator,
    Item,
    LabelClass,
    ModelVersion,
    Pick,
    SelectionRun,
    annotation_class,
)
from storage.queries import class_sets, in_chunks
from storage.types import utc_now


@dataclass(frozen=True)
class CurrentLabel:
    """An item's newest annotation: its id and the item's class ids (empty when cleared)."""

    annotation_id: int
    class_ids: tuple[int, ...]


def current_labels(session: Session, project_id: int) -> dict[int, CurrentLabel]:
    """Map each annotated item of the project to its newest annotation."""
    newest = (
        select(func.max(Annotation.id))
        .join(Item, Item.id == Annotation.item_id)
        .where(Item.project_id == project_id)
        .group_by(Annotation.item_id)
    )
    return _labels_of(session, newest)


def _labels_of(session: Session, annotation_ids) -> dict[int, CurrentLabel]:
    """The labels the given annotations (a subquery of ids, one per item) state, keyed by item."""
    rows = session.execute(
        select(Annotation.id, Annotation.item_id, annotation_class.c.label_class_id)
        .outerjoin(annotation_class, annotation_class.c.annotation_id == Annotation.id)
        .where(Annotation.id.in_(annotation_ids))
    )
    return {item_id: CurrentLabel(annotation_id, ids) for annotation_id, ((item_id,), ids) in class_sets(rows).items()}


def current_labels_of(session: Session, item_ids: Iterable[int]) -> dict[int, CurrentLabel]:
    """Current labels of ``item_ids`` (those ever annotated), keyed by item."""
    labels: dict[int, CurrentLabel] = {}
    for chunk in in_chunks(item_ids):
        newest = select(func.max(Annotation.id)).where(Annotation.item_id.in_(chunk)).group_by(Annotation.item_id)
        labels.update(_labels_of(session, newest))
    return labels


def label_classes(session: Session, project_id: int, *, include_archived: bool = False) -> list[LabelClass]:
    """The project's classes in the order they were added (the keyboard order)."""
    query = select(LabelClass).where(LabelClass.project_id == project_id)
    if not include_archived:
        query = query.where(LabelClass.archived_at.is_(None))
    return list(session.scalars(query.order_by(LabelClass.id)))


def label_classes_by_id(session: Session, project_id: int, class_ids: Iterable[int]) -> dict[int, LabelClass]:
    """The project's classes among ``class_ids`` (archived ones too), keyed by id; others are absent."""
    wanted = list(class_ids)
    if not wanted:
        return {}
    query = select(LabelClass).where(LabelClass.project_id == project_id, LabelClass.id.in_(wanted))
    return {label_class.id: label_class for label_class in session.scalars(query)}


def newest_annotation_id(session: Session, project_id: int) -> int:
    """The id of the project's newest annotation, 0 before the first: what engines poll."""
    query = (
        select(func.max(Annotation.id)).join(Item, Item.id == Annotation.item_id).where(Item.project_id == project_id)
    )
    return session.scalar(query) or 0


def current_labels_since(session: Session, project_id: int, after_annotation_id: int) -> dict[int, CurrentLabel]:
    """Current labels of the project's items that have an annotation newer than ``after_annotation_id``."""
    touched = (
        select(Annotation.item_id)
        .join(Item, Item.id == Annotation.item_id)
        .where(Item.project_id == project_id, Annotation.id > after_annotation_id)
    )
    newest = select(func.max(Annotation.id)).where(Annotation.item_id.in_(touched)).group_by(Annotation.item_id)
    return _labels_of(session, newest)


def _label_class(session: Session, class_id: int) -> LabelClass:
    label_class = session.get(LabelClass, class_id)
    if label_class is None:
        raise LookupError(f"no label class with id {class_id}")
    return label_class


def set_class_name(session: Session, class_id: int, name: str) -> None:
    _label_class(session, class_id).name = name
    session.flush()


def set_class_archived(session: Session, class_id: int, archived: bool) -> None:
    _label_class(session, class_id).archived_at = utc_now() if archived else None
    session.flush()


def add_selection_run(
    session: Session,
    *,
    project_id: int,
    model_version_id: int | None,
    strategy: str,
    parameters: Mapping[str, Any],
    picks: Sequence[Mapping[str, Any]],
) -> tuple[int, list[int]]:
    """Add a selection run and its picks (dicts of item_id, score_parts, source, predicted).

    Returns the run id and the pick ids, in rank order.
    """
    run = SelectionRun(
        project_id=project_id, model_version_id=model_version_id, strategy=strategy, parameters=dict(parameters)
    )
    session.add(run)
    session.flush()
    rows = [Pick(selection_run_id=run.id, rank=rank, **pick) for rank, pick in enumerate(picks)]
    session.add_all(rows)
    session.flush()
    return run.id, [row.id for row in rows]


def add_model_version(
    session: Session, *, project_id: int, n_labels: int, metrics: Mapping[str, Any], artifact_path: str
) -> int:
    version = ModelVersion(project_id=project_id, n_labels=n_labels, metrics=dict(metrics), artifact_path=artifact_path)
    session.add(version)
    session.flush()
    return version.id


def latest_model_version(session: Session, project_id: int, backbone_key: str) -> ModelVersion | None:
    """The newest model version of the project trained on embeddings of ``backbone_key``."""
    versions = session.scalars(
        select(ModelVersion).where(ModelVersion.project_id == project_id).order_by(ModelVersion.id.desc())
    )
    return next((v for v in versions if v.metrics.get("backbone") == backbone_key), None)


def model_versions(session: Session, project_id: int) -> list[ModelVersion]:
    return list(
        session.scalars(select(ModelVersion).where(ModelVersion.project_id == project_id).order_by(ModelVersion.id))
    )


@dataclass(frozen=True)
class AnnotationEvent:
    """One annotation of a project, for activity charts."""

    annotation_id: int
    item_id: int
    created_at: datetime
    annotator: str | None
    source: AnnotationSource
    supersedes_id: int | None
    class_ids: tuple[int, ...]


def annotation_events(session: Session, project_id: int) -> list[AnnotationEvent]:
    """Every annotation of the project, oldest first."""
    # Annotator name None: no person made it; class id None: it names no class.
    rows: Result[int, int, datetime, str | None, AnnotationSource, int | None, int | None] = session.execute(
        select(
            Annotation.id,
            Annotation.item_id,
            Annotation.created_at,
            Annotator.name,
            Annotation.source,
            Annotation.supersedes_id,
            annotation_class.c.label_class_id,
        )
        .join(Item, Item.id == Annotation.item_id)
        .outerjoin(Annotator, Annotator.id == Annotation.annotator_id)
        .outerjoin(annotation_class, annotation_class.c.annotation_id == Annotation.id)
        .where(Item.project_id == project_id)
        .order_by(Annotation.id)
    )
    return [
        AnnotationEvent(annotation_id, item_id, created, annotator, source, supersedes_id, ids)
        for annotation_id, ((item_id, created, annotator, source, supersedes_id), ids) in class_sets(rows).items()
    ]


@dataclass(frozen=True)
class AuditPick:
    """An audit ask: the item, when it was asked, the model version that predicted, and what."""

    item_id: int
    asked_at: datetime
    model_version_id: int | None
    predicted: tuple[int, ...]


def audit_picks(session: Session, project_id: int) -> list[AuditPick]:
    """Every audit pick of the project that carries a prediction, oldest first."""
    rows = session.execute(
        select(Pick.item_id, SelectionRun.created_at, SelectionRun.model_version_id, Pick.predicted)
        .join(SelectionRun, SelectionRun.id == Pick.selection_run_id)
        .where(SelectionRun.project_id == project_id, Pick.source == "audit", Pick.predicted.is_not(None))
        .order_by(Pick.id)
    )
    return [
        AuditPick(item_id, asked, version, tuple(predicted)) for item_id, asked, version, predicted in rows if predicted
    ]


def items_by_id(session: Session, project_id: int, item_ids: Iterable[int]) -> dict[int, Item]:
    return {
        item.id: item
        for chunk in in_chunks(item_ids)
        for item in session.scalars(select(Item).where(Item.project_id == project_id, Item.id.in_(chunk)))
    }
