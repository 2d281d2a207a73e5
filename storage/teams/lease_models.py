"""Leases on asks and review tasks for disagreements: the tables of annotation teams.

An :class:`ItemLease` row says who may label an item now. There is at most one row per
(item, overlap): the unique constraint is the database's own guarantee that an item has
at most one primary holder and at most one overlap holder at a time. A lease is taken
with one atomic upsert that only replaces a row that has expired and was never labeled
(or that the same annotator holds already), so concurrent takers on SQLite and PostgreSQL
alike get it at most once. Labeling marks the row ``labeled_at`` in the same transaction
as the annotation; a labeled row never expires, which keeps the item from being asked
again as a primary ask.

A :class:`ReviewTask` is one row per item whose overlap labels disagree; ``round`` counts
how often it was opened. The reviewer's decision is an :class:`~storage.models.Annotation`
with source ``review``, named by ``decision_annotation_id``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base
from storage.types import UtcDateTime, utc_now


class ItemLease(Base):
    """An annotator's hold on an item: ``overlap`` False for the primary ask, True for the
    one deliberate second opinion; see the module docstring."""

    __tablename__ = "item_lease"
    __table_args__ = (UniqueConstraint("item_id", "overlap"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id"))
    overlap: Mapped[bool]
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotator.id"))
    leased_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    labeled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ReviewTask(Base):
    """An item whose overlap labels disagree; open while ``resolved_at`` is empty."""

    __tablename__ = "review_task"
    __table_args__ = (UniqueConstraint("item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id"))
    round: Mapped[int] = mapped_column(default=1)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("annotator.id"))
    decision_annotation_id: Mapped[int | None] = mapped_column(ForeignKey("annotation.id"))
