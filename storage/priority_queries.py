"""Queries behind priority asks: images queued to be asked before the strategy's own picks.

A queue is a selection run of strategy ``triage`` whose picks (source ``triage``, in rank
order) wait to be asked; a pick is pending while its item has no current label that names
a class. Runs queued earlier come first. Each takes a Session and never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, aliased

from storage.models import Annotation, Item, Pick, SelectionRun, annotation_class

TRIAGE = "triage"  # the strategy of a triage queue's selection run and the source of its picks
CHUNK = 500  # ids per IN (...) list: stays under SQLite's bound-parameter limit


@dataclass(frozen=True)
class PendingPick:
    """A queued pick not answered yet: the pick (it is the ask's record), the item, why it was queued."""

    pick_id: int
    item_id: int
    score_parts: dict[str, float]


def pending(session: Session, project_id: int, *, source: str = TRIAGE) -> list[PendingPick]:
    """The project's queued picks whose item is unlabeled, in queue order (oldest run first, then
    rank); an item queued twice (labeled, cleared and queued again) comes once, at its first place."""
    newest = aliased(Annotation)
    newest_id = (select(func.max(newest.id)).where(newest.item_id == Pick.item_id)
                 .correlate(Pick).scalar_subquery())
    labeled = exists().where(annotation_class.c.annotation_id == newest_id)
    rows = session.execute(
        select(Pick.id, Pick.item_id, Pick.score_parts)
        .join(SelectionRun, SelectionRun.id == Pick.selection_run_id)
        .where(SelectionRun.project_id == project_id, SelectionRun.strategy == source, Pick.source == source,
               ~labeled)
        .order_by(SelectionRun.id, Pick.rank))
    found: dict[int, PendingPick] = {}
    for pick_id, item_id, parts in rows:
        found.setdefault(item_id, PendingPick(pick_id, item_id, dict(parts or {})))
    return list(found.values())


def items_of_project(session: Session, project_id: int, item_ids: Sequence[int]) -> set[int]:
    """The ids among ``item_ids`` that are items of the project."""
    ids = list(dict.fromkeys(item_ids))
    found: set[int] = set()
    for start in range(0, len(ids), CHUNK):
        found.update(session.scalars(select(Item.id).where(Item.project_id == project_id,
                                                           Item.id.in_(ids[start : start + CHUNK]))))
    return found
