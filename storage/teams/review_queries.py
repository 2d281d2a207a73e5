"""Queries behind agreement and the review queue. Each takes a Session and never commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage.models import Annotation, AnnotationSource, Annotator, Item, annotation_class
from storage.queries import class_sets, in_chunks, rowcount
from storage.teams.lease_models import ReviewTask
from storage.teams.lease_queries import dialect_insert


@dataclass(frozen=True)
class Opinion:
    """One human or review annotation: who gave which class set, in which order (annotation id)."""

    annotation_id: int
    item_id: int
    annotator: str
    source: AnnotationSource
    class_ids: tuple[int, ...]


def opinions(
    session: Session, *, project_id: int, item_ids: Sequence[int] | None = None, min_annotators: int = 1
) -> list[Opinion]:
    """Human, undo and review annotations of the project's items (of ``item_ids`` when given)
    that ``min_annotators`` or more people labeled by hand, oldest first."""
    query = (
        select(Annotation.id, Annotation.item_id, Annotator.name, Annotation.source, annotation_class.c.label_class_id)
        .join(Item, Item.id == Annotation.item_id)
        .join(Annotator, Annotator.id == Annotation.annotator_id)
        .outerjoin(annotation_class, annotation_class.c.annotation_id == Annotation.id)
        .where(
            Item.project_id == project_id,
            Annotation.source.in_([AnnotationSource.HUMAN, AnnotationSource.UNDO, AnnotationSource.REVIEW]),
        )
        .order_by(Annotation.id)
    )
    if min_annotators > 1:
        shared = (
            select(Annotation.item_id)
            .join(Item, Item.id == Annotation.item_id)
            .where(Item.project_id == project_id, Annotation.source == AnnotationSource.HUMAN)
            .group_by(Annotation.item_id)
            .having(func.count(func.distinct(Annotation.annotator_id)) >= min_annotators)
        )
        query = query.where(Annotation.item_id.in_(shared))
    # class id None: the annotation names no class
    rows: list[tuple[int, int, str, AnnotationSource, int | None]] = []
    if item_ids is None:
        rows.extend(session.execute(query))
    for chunk in in_chunks(item_ids or ()):
        rows.extend(session.execute(query.where(Annotation.item_id.in_(chunk))))
    return [
        Opinion(annotation_id, item_id, name, source, ids)
        for annotation_id, ((item_id, name, source), ids) in sorted(class_sets(rows).items())
    ]


def open_task(session: Session, *, project_id: int, item_id: int, now: datetime) -> None:
    """Open the item's review task: a new row, or the next round of a resolved one (an open one stays as it is)."""
    insert = dialect_insert(session)
    statement = insert(ReviewTask).values(project_id=project_id, item_id=item_id, round=1, opened_at=now)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[ReviewTask.item_id],
            set_=dict(
                round=ReviewTask.round + 1,
                opened_at=now,
                resolved_at=None,
                reviewer_id=None,
                decision_annotation_id=None,
            ),
            where=ReviewTask.resolved_at.is_not(None),
        )
    )


def open_tasks(session: Session, project_id: int) -> list[ReviewTask]:
    """The project's open review tasks, oldest first."""
    return list(
        session.scalars(
            select(ReviewTask)
            .where(ReviewTask.project_id == project_id, ReviewTask.resolved_at.is_(None))
            .order_by(ReviewTask.opened_at, ReviewTask.id)
        )
    )


def resolve_task(session: Session, *, task_id: int, round: int, reviewer_id: int, now: datetime) -> bool:
    """Close the task's ``round`` for the reviewer; False when it is closed already or was reopened since."""
    result = session.execute(
        update(ReviewTask)
        .where(ReviewTask.id == task_id, ReviewTask.round == round, ReviewTask.resolved_at.is_(None))
        .values(resolved_at=now, reviewer_id=reviewer_id)
    )
    return bool(rowcount(result))


def set_decision(session: Session, *, task_id: int, annotation_id: int) -> None:
    session.execute(update(ReviewTask).where(ReviewTask.id == task_id).values(decision_annotation_id=annotation_id))
