"""The review queue: items whose annotators disagree, and the reviewer's final decision.

An item needs review when the newest labels of two annotators on it differ (each
annotator's newest human annotation that names a class; an undo withdraws it). The
reviewer's decision is a new annotation with source ``review``; it becomes the item's
label and closes the task. It is final: later labels of the item that agree with it
change nothing, and only a later human label that differs from the decision opens the
task again (the next ``round``). Two reviewers deciding at once: the first wins, the
second is told so and nothing of theirs is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from services.database import Database
from services.errors import UserError
from services.labeling.labels import append_annotation
from services.projects import get_project
from storage.labels import label_queries
from storage import queries
from storage.teams import review_queries
from storage.models import AnnotationSource
from storage.teams.review_queries import Opinion
from storage.types import utc_now


def newest_opinions(opinions: Sequence[Opinion]) -> tuple[dict[str, Opinion], Opinion | None]:
    """One item's annotations, oldest first -> (each annotator's newest human label that names a
    class, the newest review decision or None)."""
    latest: dict[str, Opinion] = {}
    decision = None
    for opinion in opinions:
        if opinion.source is AnnotationSource.REVIEW:
            decision = opinion
        elif opinion.class_ids and opinion.source is AnnotationSource.HUMAN:
            latest[opinion.annotator] = opinion
        else:
            latest.pop(opinion.annotator, None)  # an undo or a cleared label withdraws the opinion
    return latest, decision


def needs_review(opinions: Sequence[Opinion]) -> bool:
    """Whether one item's annotations (oldest first) disagree; see the module docstring."""
    latest, decision = newest_opinions(opinions)
    if decision is None:
        return len({opinion.class_ids for opinion in latest.values()}) > 1
    return any(opinion.annotation_id > decision.annotation_id and opinion.class_ids != decision.class_ids
               for opinion in latest.values())


def open_if_disagreement(session: Session, *, project_id: int, item_id: int, now: datetime) -> None:
    """In the caller's write session: open the item's review task when its labels disagree."""
    if needs_review(review_queries.opinions(session, project_id=project_id, item_ids=[item_id])):
        review_queries.open_task(session, project_id=project_id, item_id=item_id, now=now)


@dataclass(frozen=True)
class ReviewItem:
    """An open review task: the item, and each annotator's newest label of it (class ids)."""

    task_id: int
    round: int
    item_id: int
    path: str
    labels: dict[str, tuple[int, ...]]
    previous_decision: tuple[int, ...] | None


def review_queue(db: Database, project_name: str) -> list[ReviewItem]:
    """The project's open review tasks, oldest first."""
    project = get_project(db, project_name)
    with db.reading() as session:
        tasks = review_queries.open_tasks(session, project.id)
        items = label_queries.items_by_id(session, project.id, [task.item_id for task in tasks])
        by_item: dict[int, list[Opinion]] = {}
        for opinion in review_queries.opinions(session, project_id=project.id, item_ids=list(items)):
            by_item.setdefault(opinion.item_id, []).append(opinion)
    queue = []
    for task in tasks:
        latest, decision = newest_opinions(by_item.get(task.item_id, []))
        queue.append(ReviewItem(task.id, task.round, task.item_id, items[task.item_id].path,
                                {name: opinion.class_ids for name, opinion in latest.items()},
                                decision.class_ids if decision is not None else None))
    return queue


def decide(db: Database, *, task: ReviewItem, reviewer: str, class_names: Sequence[str]) -> int:
    """Record the reviewer's final label of the task's item as a ``review`` annotation and close the task.

    Returns
    -------
    int
        The decision's annotation id; durable when this returns.

    Raises
    ------
    UserError
        When another reviewer decided this task first, or the label breaks a rule of
        :func:`services.labeling.labels.record_annotation`.
    """
    now = utc_now()
    with db.writing() as session:
        reviewer_id = queries.get_or_add_annotator(session, reviewer).id
        if not review_queries.resolve_task(session, task_id=task.task_id, round=task.round, reviewer_id=reviewer_id,
                                           now=now):
            raise UserError(f"{task.path} was decided by another reviewer meanwhile (or its labels changed); "
                            "the queue shows what is still open")
        newest = queries.latest_annotation(session, task.item_id)
        annotation_id = append_annotation(session, item_id=task.item_id, class_names=class_names, annotator=reviewer,
                                          source=AnnotationSource.REVIEW, duration_ms=None,
                                          supersedes_id=newest.id if newest is not None else None)
        review_queries.set_decision(session, task_id=task.task_id, annotation_id=annotation_id)
    return annotation_id
