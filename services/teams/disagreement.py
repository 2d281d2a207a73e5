"""When an item needs review: the newest labels of two annotators on it differ.

Each annotator's newest human annotation that names a class counts; an undo or a cleared label
withdraws it. A review decision is final: only a later human label that differs from it opens
the item again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from storage.models import AnnotationSource
from storage.teams import review_queries
from storage.teams.review_queries import Opinion


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
    return any(
        opinion.annotation_id > decision.annotation_id and opinion.class_ids != decision.class_ids
        for opinion in latest.values()
    )


def open_if_disagreement(session: Session, *, project_id: int, item_id: int, now: datetime) -> None:
    """In the caller's write session: open the item's review task when its labels disagree."""
    if needs_review(review_queries.opinions(session, project_id=project_id, item_ids=[item_id])):
        review_queries.open_task(session, project_id=project_id, item_id=item_id, now=now)
