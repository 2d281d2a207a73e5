"""Priority asks: images queued (by the Triage report) to be asked on the Label page next.

:func:`queue_priority_asks` stores the queue as a selection run of strategy ``triage``
whose picks have source ``triage`` (:mod:`storage.labels.priority_queries`), so it survives a
restart and every app or process of the project sees it. :func:`priority_asks` is how an
annotator's leases take from it (called by :meth:`services.teams.leases.AskLeases.lease` after
overlap asks and before the engine's own picks): pending picks in queue order, minus items
someone else holds, leased with the same atomic upsert as any ask, so that several
annotators at once are each asked different images. A queued pick is the record of its
ask: "Why this image?" reads its source, and audit accuracy, which counts only picks of
source ``audit``, never includes it. Images labeled meanwhile (anywhere) are skipped.

:func:`queue_view` shows what waits and who holds it now; :func:`clear_queue` withdraws
every waiting pick (``Pick.withdrawn_at``), keeping the picks as the record of what was
queued and asked.
Headless ``select`` (:mod:`services.data_engine.headless_selection`) hands waiting images out first
and withdraws them in the same transaction as it records them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from services.database import Database
from services.engine.project_engine import Ask
from storage.labels import label_queries, priority_queries
from storage.labels.priority_queries import TRIAGE, PendingPick
from storage.teams import lease_queries
from storage.teams.lease_queries import LeaseHolder
from storage.types import utc_now

if TYPE_CHECKING:
    from services.teams.leases import AskLeases


@dataclass(frozen=True)
class QueueResult:
    """What :func:`queue_priority_asks` did: ``queued`` new images; ``already_queued`` were
    waiting from an earlier press; ``labeled`` have a label already and were left out."""

    queued: int
    already_queued: int
    labeled: int
    selection_run_id: int | None = None


def queue_priority_asks(
    db: Database,
    *,
    project_id: int,
    items: Sequence[tuple[int, Mapping[str, float]]],
    parameters: Mapping[str, Any] | None = None,
    source: str = TRIAGE,
) -> QueueResult:
    """Queue ``items`` ((item id, score parts), in the order to ask them) after whatever is queued
    already, in one transaction. Items waiting in the queue, labeled items and items of other
    projects are left out, so queueing the same images again adds nothing."""
    order = list(dict.fromkeys(int(item) for item, _ in items))
    parts = {int(item): dict(score_parts) for item, score_parts in items}
    with db.writing() as session:
        waiting = {pick.item_id for pick in priority_queries.pending(session, project_id, source=source)}
        known = priority_queries.items_of_project(session, project_id, order)
        labeled = {item for item, label in label_queries.current_labels_of(session, order).items() if label.class_ids}
        new = [item for item in order if item in known and item not in waiting and item not in labeled]
        run_id = None
        if new:
            run_id, _ = label_queries.add_selection_run(
                session,
                project_id=project_id,
                model_version_id=None,
                strategy=source,
                parameters=dict(parameters or {}),
                picks=[dict(item_id=item, score_parts=parts[item], source=source, predicted=None) for item in new],
            )
    return QueueResult(
        queued=len(new),
        already_queued=sum(item in waiting for item in order),
        labeled=sum(item in labeled and item not in waiting for item in order),
        selection_run_id=run_id,
    )


@dataclass(frozen=True)
class QueueView:
    """The waiting queue: how many images wait, the first of them in the order they will be asked,
    and who holds any of those first ones now (item id -> holder; an image shown to an annotator
    stays in the queue until it is labeled)."""

    waiting: int
    first: list[PendingPick]
    held: dict[int, LeaseHolder] = field(default_factory=dict)


def queue_view(db: Database, project_id: int, *, first: int = 36, source: str = TRIAGE) -> QueueView:
    """How many queued images wait (unlabeled, not withdrawn), the first ``first`` of them, in ask
    order, and the current lease holders of those first ones; one read, so the three agree."""
    with db.reading() as session:
        waiting = priority_queries.pending(session, project_id, source=source)
        shown = waiting[: max(first, 0)]
        held = lease_queries.holders(session, [pick.item_id for pick in shown], now=utc_now())
    return QueueView(waiting=len(waiting), first=shown, held=held)


def clear_queue(db: Database, project_id: int, *, source: str = TRIAGE) -> int:
    """Withdraw every waiting queued image of the project; return how many. Labeled images and
    the picks themselves stay recorded; an image already shown to an annotator can still be labeled."""
    with db.writing() as session:
        return priority_queries.withdraw(session, project_id, now=utc_now(), source=source)


def askable(leases: AskLeases, exclude: Iterable[int] = ()) -> list[PendingPick]:
    """Waiting queued picks ``leases``' annotator could be asked now, in queue order: not in
    ``exclude``, not held by another annotator, and in the engine's pool."""
    engine = leases.engine
    with engine.db.reading() as session:
        waiting = priority_queries.pending(session, engine.project_id)
        if not waiting:
            return []
        held = lease_queries.held_by_others(
            session, project_id=engine.project_id, annotator_id=leases.annotator_id, now=utc_now()
        )
    skip = set(exclude) | held
    return [pick for pick in waiting if pick.item_id in engine.pool.row_of and pick.item_id not in skip]


def priority_asks(leases: AskLeases, n: int, exclude: Iterable[int] = ()) -> list[Ask]:
    """Lease up to ``n`` queued asks for ``leases``' annotator, in queue order.

    Skips items in ``exclude`` (this session's queue and skips), items another annotator
    holds, and items the engine's pool lacks (not embedded yet: asked once they join it).
    """
    engine = leases.engine
    if n <= 0:
        return []
    candidates = askable(leases, exclude)
    serving = engine.serving
    asks: list[Ask] = []
    while candidates and len(asks) < n:
        chunk, candidates = candidates[: n - len(asks)], candidates[n - len(asks) :]
        taken = leases._take([pick.item_id for pick in chunk])  # refuses items labeled or held meanwhile
        asks += [
            Ask(
                item_id=pick.item_id,
                path=engine.pool.paths[engine.pool.row_of[pick.item_id]],
                pick_id=pick.pick_id,
                source=TRIAGE,
                score_parts=pick.score_parts,
                predicted=(),
                model_version_id=serving.model_version_id,
                band=None,
            )
            for pick in chunk
            if pick.item_id in taken
        ]
    return asks
