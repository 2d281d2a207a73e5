"""Item look-ups for embeddings and similarity search. Each takes a Session and never commits."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import Item, ItemStatus
from storage.queries import in_chunks


def ok_item_paths(session: Session, project_id: int) -> list[tuple[int, str]]:
    """Return ``(item id, path relative to the root)`` of every ingested image, by id."""
    query = (
        select(Item.id, Item.path).where(Item.project_id == project_id, Item.status == ItemStatus.OK).order_by(Item.id)
    )
    return [(item_id, path) for item_id, path in session.execute(query)]


def ok_items_signature(session: Session, project_id: int) -> tuple[int, int]:
    """Return the count and the largest id of the project's ingested images: one cheap query
    that changes whenever images are added or leave the pool."""
    query = select(func.count(Item.id), func.max(Item.id)).where(
        Item.project_id == project_id, Item.status == ItemStatus.OK
    )
    count, largest = session.execute(query).one()
    return int(count), int(largest or 0)


def image_shorter_sides(session: Session, project_id: int, *, limit: int = 1000) -> list[int]:
    """Shorter side in pixels of up to ``limit`` of the project's ingested images (the first
    ingested): enough to tell tiny images from photos without reading every row."""
    query = (
        select(Item.width, Item.height)
        .where(Item.project_id == project_id, Item.status == ItemStatus.OK, Item.width.is_not(None))
        .order_by(Item.id)
        .limit(limit)
    )
    return [min(width, height) for width, height in session.execute(query) if width is not None and height is not None]


def item_id_by_path(session: Session, project_id: int, path: str) -> int | None:
    """Return the id of the project's item at ``path`` (relative, POSIX), or None."""
    return session.scalar(select(Item.id).where(Item.project_id == project_id, Item.path == path))


def paths_by_id(session: Session, project_id: int, item_ids: Iterable[int]) -> dict[int, str]:
    """Map each of the project's ``item_ids`` that exists to its relative path."""
    found: dict[int, str] = {}
    for chunk in in_chunks(item_ids):
        query = select(Item.id, Item.path).where(Item.project_id == project_id, Item.id.in_(chunk))
        found.update((item_id, path) for item_id, path in session.execute(query))
    return found
