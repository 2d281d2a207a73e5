"""Queries behind priority asks: images queued to be asked before the strategy's own picks.

A queue is a selection run of strategy ``triage`` whose picks (source ``triage``, in rank
order) wait to be asked; a pick is pending while its item has no current label that names
a class and the pick was not withdrawn (``Pick.withdrawn_at``: the queue was cleared, or
headless ``select`` handed the image out). Withdrawn picks stay as the record that the
image was queued. Runs queued earlier come first. Each takes a Session and never commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Result, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from storage.models import Annotation, Item, Pick, SelectionRun, annotation_class
from storage.queries import in_chunks

TRIAGE = "triage"  # the strategy of a triage queue's selection run and the source of its picks


@dataclass(frozen=True)
class PendingPick:
    """A queued pick not answered yet: the pick (it is the ask's record), the item, why it was queued,
    when (its selection run's ``created_at``) and from what (the run's ``batch`` parameter, "" if none)."""

    pick_id: int
    item_id: int
    score_parts: dict[str, float]
    path: str = ""
    queued_at: datetime | None = None
    batch: str = ""


def _pending_where(project_id: int, source: str):
    """The conditions of a waiting queued pick: the project's queue, unlabeled item, not withdrawn."""
    newest = aliased(Annotation)
    newest_id = select(func.max(newest.id)).where(newest.item_id == Pick.item_id).correlate(Pick).scalar_subquery()
    labeled = exists().where(annotation_class.c.annotation_id == newest_id)
    return (
        SelectionRun.project_id == project_id,
        SelectionRun.strategy == source,
        Pick.source == source,
        Pick.withdrawn_at.is_(None),
        ~labeled,
    )


def pending(session: Session, project_id: int, *, source: str = TRIAGE) -> list[PendingPick]:
    """The project's queued picks whose item is unlabeled, in queue order (oldest run first, then
    rank); an item queued twice (its label removed and queued again) comes once, at its first place."""
    rows: Result[int, int, dict[str, float], str, datetime, dict[str, Any]] = session.execute(
        select(Pick.id, Pick.item_id, Pick.score_parts, Item.path, SelectionRun.created_at, SelectionRun.parameters)
        .join(SelectionRun, SelectionRun.id == Pick.selection_run_id)
        .join(Item, Item.id == Pick.item_id)
        .where(*_pending_where(project_id, source))
        .order_by(SelectionRun.id, Pick.rank)
    )
    found: dict[int, PendingPick] = {}
    for pick_id, item_id, parts, path, created_at, parameters in rows:
        batch = str((parameters or {}).get("batch") or "")
        found.setdefault(item_id, PendingPick(pick_id, item_id, dict(parts or {}), path, created_at, batch))
    return list(found.values())


def withdraw(
    session: Session, project_id: int, *, now: datetime, item_ids: Sequence[int] | None = None, source: str = TRIAGE
) -> int:
    """Withdraw the project's waiting queued picks (of ``item_ids`` only, when given): mark them
    ``withdrawn_at = now``, so that they are no longer asked; the picks stay. Picks of labeled
    items and picks withdrawn earlier are left as they are. Returns the number of images withdrawn."""
    pick_items = dict(
        session.execute(
            select(Pick.id, Pick.item_id)
            .join(SelectionRun, SelectionRun.id == Pick.selection_run_id)
            .where(*_pending_where(project_id, source))
        ).all()
    )
    if item_ids is not None:
        wanted = set(item_ids)
        pick_items = {pick: item for pick, item in pick_items.items() if item in wanted}
    for chunk in in_chunks(pick_items):
        session.execute(
            update(Pick).where(Pick.id.in_(chunk)).values(withdrawn_at=now).execution_options(synchronize_session=False)
        )
    return len(set(pick_items.values()))


def put_first(session: Session, selection_run_id: int, picks: Sequence[Mapping[str, Any]]) -> list[int]:
    """Add ``picks`` (dicts of item_id, score_parts, source, predicted) to a recorded selection run,
    ranked before its picks (whose ranks move up by ``len(picks)``, in two steps that never break the
    run's unique ranks). Returns the new pick ids, in rank order."""
    k = len(picks)
    if k == 0:
        return []
    for rank in (-(Pick.rank + 1), k - 1 - Pick.rank):  # r -> -(r + 1) -> r + k
        session.execute(
            update(Pick)
            .where(Pick.selection_run_id == selection_run_id)
            .values(rank=rank)
            .execution_options(synchronize_session=False)
        )
    rows = [Pick(selection_run_id=selection_run_id, rank=rank, **pick) for rank, pick in enumerate(picks)]
    session.add_all(rows)
    session.flush()
    return [row.id for row in rows]


def items_of_project(session: Session, project_id: int, item_ids: Sequence[int]) -> set[int]:
    """The ids among ``item_ids`` that are items of the project."""
    found: set[int] = set()
    for chunk in in_chunks(dict.fromkeys(item_ids)):
        found.update(session.scalars(select(Item.id).where(Item.project_id == project_id, Item.id.in_(chunk))))
    return found
