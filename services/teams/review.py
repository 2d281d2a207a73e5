"""The review queue: items whose annotators disagree, and the reviewer's final decision.

An item needs review when the newest labels of two annotators on it differ
(:mod:`services.teams.disagreement`). The
reviewer's decision is a new annotation with source ``review``; it becomes the item's
label and closes the task. It is final: later labels of the item that agree with it
change nothing, and only a later human label that differs from the decision opens the
task again (the next ``round``). Two reviewers deciding at once: the first wins, the
second is told so and nothing of theirs is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.database import Database
from services.labeling.write import LabelWrite, ReviewTask, write_labels
from services.projects import get_project
from services.teams.disagreement import newest_opinions
from storage.labels import label_queries
from storage.models import AnnotationSource
from storage.teams import review_queries
from storage.teams.review_queries import Opinion


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
        queue.append(
            ReviewItem(
                task.id,
                task.round,
                task.item_id,
                items[task.item_id].path,
                {name: opinion.class_ids for name, opinion in latest.items()},
                decision.class_ids if decision is not None else None,
            )
        )
    return queue


def decide(db: Database, *, project_id: int, task: ReviewItem, reviewer: str, class_ids: Sequence[int]) -> int:
    """Record the reviewer's final label of the task's item as a ``review`` annotation and close the task.

    Returns
    -------
    int
        The decision's annotation id; durable when this returns.

    Raises
    ------
    UserError
        When another reviewer decided this task first, or the label breaks a rule of
        :func:`services.labeling.write.add_label`.
    """
    return write_labels(
        db,
        project_id=project_id,
        labels=[LabelWrite(task.item_id, tuple(class_ids))],
        annotator=reviewer,
        source=AnnotationSource.REVIEW,
        review=ReviewTask(task.task_id, task.round),
    )[0]
