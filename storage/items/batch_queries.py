"""Which ingested images make up a batch of new data. Each takes a Session and never commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Item, ItemStatus


def ok_items_since(session: Session, project_id: int, since: datetime | None) -> list[tuple[int, str]]:
    """``(item id, relative path)`` of the project's ingested images created at or after ``since``
    (all of them when None), by id."""
    query = select(Item.id, Item.path).where(Item.project_id == project_id, Item.status == ItemStatus.OK)
    if since is not None:
        query = query.where(Item.created_at >= since)
    return [(item_id, path) for item_id, path in session.execute(query.order_by(Item.id))]
