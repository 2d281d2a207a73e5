"""Queries behind leases on asks (see :mod:`storage.teams.lease_models`). Each takes a Session and never commits.

Taking a lease is one ``INSERT ... ON CONFLICT (item_id, overlap) DO UPDATE ... WHERE``
statement: the row is inserted when the item has none, and replaced only when the
existing row has expired unlabeled or belongs to the same annotator. PostgreSQL locks
the conflicting row and checks the condition against its newest committed version;
SQLite runs one writer at a time. Rows are locked in item id order, so two takers never
wait on each other in a cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, and_, cast, delete, exists, literal, or_, select, update
from sqlalchemy.orm import Session, aliased

from storage.models import Annotation, Annotator, Base
from storage.queries import in_chunks, rowcount
from storage.teams.lease_models import ItemLease

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

# Knuth's multiplicative hash: consecutive item ids spread evenly over [0, 2**32).
OVERLAP_HASH_MULTIPLIER = 2654435761
OVERLAP_HASH_RANGE = 2**32


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds an item's primary lease now, and until when (unless they label it first)."""

    annotator: str
    expires_at: datetime


def overlap_threshold(share: float) -> int:
    """Items whose hash is below this are offered for a second opinion."""
    return round(share * OVERLAP_HASH_RANGE)


def dialect_insert(session: Session) -> Callable[[type[Base]], postgresql.Insert | sqlite.Insert]:
    """The `insert` construct of the session's dialect, which has `on_conflict_do_update`."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert
    raise NotImplementedError(f"leases need SQLite or PostgreSQL, not {dialect}")


def take(
    session: Session,
    *,
    project_id: int,
    annotator_id: int,
    item_ids: Sequence[int],
    overlap: bool,
    now: datetime,
    expires_at: datetime,
) -> set[int]:
    """Lease ``item_ids`` to the annotator; return the ids leased (the others are held or labeled)."""
    if not item_ids:
        return set()
    insert = dialect_insert(session)
    rows = [
        dict(
            project_id=project_id,
            item_id=item_id,
            overlap=overlap,
            annotator_id=annotator_id,
            leased_at=now,
            expires_at=expires_at,
            labeled_at=None,
        )
        for item_id in sorted(set(item_ids))
    ]
    statement = insert(ItemLease).values(rows)
    upsert = statement.on_conflict_do_update(
        index_elements=[ItemLease.item_id, ItemLease.overlap],
        set_=dict(
            annotator_id=statement.excluded.annotator_id,
            leased_at=statement.excluded.leased_at,
            expires_at=statement.excluded.expires_at,
        ),
        where=and_(
            ItemLease.labeled_at.is_(None), or_(ItemLease.expires_at <= now, ItemLease.annotator_id == annotator_id)
        ),
    ).returning(ItemLease.item_id)
    return set(session.scalars(upsert))


def renew(
    session: Session, *, annotator_id: int, keys: Iterable[tuple[int, bool]], expires_at: datetime
) -> set[tuple[int, bool]]:
    """Push the expiry of the annotator's unlabeled leases ``(item_id, overlap)``; return those still held."""
    held = set()
    for item_id, overlap in sorted(set(keys)):
        result = session.execute(
            update(ItemLease)
            .where(
                ItemLease.item_id == item_id,
                ItemLease.overlap == overlap,
                ItemLease.annotator_id == annotator_id,
                ItemLease.labeled_at.is_(None),
            )
            .values(expires_at=expires_at)
        )
        if rowcount(result):
            held.add((item_id, overlap))
    return held


def release(session: Session, *, annotator_id: int, keys: Iterable[tuple[int, bool]]) -> None:
    """Give back the annotator's unlabeled leases ``(item_id, overlap)``."""
    for item_id, overlap in sorted(set(keys)):
        session.execute(
            delete(ItemLease).where(
                ItemLease.item_id == item_id,
                ItemLease.overlap == overlap,
                ItemLease.annotator_id == annotator_id,
                ItemLease.labeled_at.is_(None),
            )
        )


def mark_labeled(session: Session, *, annotator_id: int, item_id: int, overlap: bool, now: datetime) -> bool:
    """Mark the annotator's lease labeled; False when the annotator does not hold it (it expired
    and someone else took it, or it was given back)."""
    result = session.execute(
        update(ItemLease)
        .where(
            ItemLease.item_id == item_id,
            ItemLease.overlap == overlap,
            ItemLease.annotator_id == annotator_id,
            ItemLease.labeled_at.is_(None),
        )
        .values(labeled_at=now)
    )
    return bool(rowcount(result))


def reopen(
    session: Session, *, annotator_id: int, item_id: int, overlap: bool, now: datetime, expires_at: datetime
) -> bool:
    """Turn the annotator's labeled lease back into a live one (after an undo)."""
    result = session.execute(
        update(ItemLease)
        .where(ItemLease.item_id == item_id, ItemLease.overlap == overlap, ItemLease.annotator_id == annotator_id)
        .values(labeled_at=None, leased_at=now, expires_at=expires_at)
    )
    return bool(rowcount(result))


def held_by_others(session: Session, *, project_id: int, annotator_id: int, now: datetime) -> set[int]:
    """Items whose primary lease another annotator holds now (unlabeled, not expired)."""
    return set(
        session.scalars(
            select(ItemLease.item_id).where(
                ItemLease.project_id == project_id,
                ItemLease.overlap.is_(False),
                ItemLease.labeled_at.is_(None),
                ItemLease.expires_at > now,
                ItemLease.annotator_id != annotator_id,
            )
        )
    )


def overlap_candidates(
    session: Session, *, project_id: int, annotator_id: int, share: float, now: datetime, limit: int
) -> list[int]:
    """Items labeled through a primary lease by someone else, picked for a second opinion (by item id
    hash, about ``share`` of them), that nobody holds or has labeled as the overlap yet and the
    annotator has never annotated; oldest label first."""
    if share <= 0 or limit <= 0:
        return []
    second = aliased(ItemLease)
    taken = exists().where(
        second.item_id == ItemLease.item_id,
        second.overlap.is_(True),
        or_(second.labeled_at.is_not(None), and_(second.expires_at > now, second.annotator_id != annotator_id)),
    )
    own = exists().where(Annotation.item_id == ItemLease.item_id, Annotation.annotator_id == annotator_id)
    query = (
        select(ItemLease.item_id)
        .where(
            ItemLease.project_id == project_id,
            ItemLease.overlap.is_(False),
            ItemLease.labeled_at.is_not(None),
            ItemLease.annotator_id != annotator_id,
            (cast(ItemLease.item_id, BigInteger) * literal(OVERLAP_HASH_MULTIPLIER, BigInteger))
            % literal(OVERLAP_HASH_RANGE, BigInteger)
            < overlap_threshold(share),
            ~taken,
            ~own,
        )
        .order_by(ItemLease.labeled_at, ItemLease.item_id)
        .limit(limit)
    )
    return list(session.scalars(query))


def leases(session: Session, project_id: int) -> list[ItemLease]:
    """Every lease row of the project (tests and reports)."""
    return list(session.scalars(select(ItemLease).where(ItemLease.project_id == project_id).order_by(ItemLease.id)))


def holders(session: Session, item_ids: Sequence[int], *, now: datetime) -> dict[int, LeaseHolder]:
    """Who holds the primary lease of each of ``item_ids`` now (not expired, not labeled yet): item -> holder.
    Items nobody holds are left out. Overlap leases (second opinions) are not asked from the queue."""
    found: dict[int, LeaseHolder] = {}
    for chunk in in_chunks(dict.fromkeys(item_ids)):
        rows = session.execute(
            select(ItemLease.item_id, Annotator.name, ItemLease.expires_at)
            .join(Annotator, Annotator.id == ItemLease.annotator_id)
            .where(
                ItemLease.item_id.in_(chunk),
                ItemLease.overlap.is_(False),
                ItemLease.labeled_at.is_(None),
                ItemLease.expires_at > now,
            )
        )
        found.update({item: LeaseHolder(name, expires_at) for item, name, expires_at in rows})
    return found
