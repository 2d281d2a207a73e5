"""Failure slices: example items, a neighbourhood rule, and per-model-version metrics."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Float, ForeignKey, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base
from storage.types import UtcDateTime, utc_now

failure_slice_example = Table(
    "failure_slice_example",
    Base.metadata,
    Column("failure_slice_id", ForeignKey("failure_slice.id"), primary_key=True),
    Column("item_id", ForeignKey("item.id"), primary_key=True, index=True),
)


class FailureSlice(Base):
    """A named neighbourhood of example items where the model is watched.

    Members are the items whose cosine similarity to the most similar example, in the
    embeddings of ``backbone_key``, is at least ``min_similarity``; that threshold is the
    similarity of the ``k``-th nearest item when the slice was created.
    """

    __tablename__ = "failure_slice"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    backbone_key: Mapped[str] = mapped_column(Text)
    k: Mapped[int]
    min_similarity: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class FailureSliceMetric(Base):
    """A slice measured with one model version: accuracy on its labeled members (each
    predicted by a refit that did not see it), member counts, and the mined members."""

    __tablename__ = "failure_slice_metric"
    __table_args__ = (UniqueConstraint("failure_slice_id", "model_version_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    failure_slice_id: Mapped[int] = mapped_column(ForeignKey("failure_slice.id"), index=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_version.id"))
    n_members: Mapped[int]
    n_labeled: Mapped[int]
    n_mined: Mapped[int]
    accuracy: Mapped[float | None] = mapped_column(Float)
    # Unlabeled members, most uncertain first (at most SliceConfig.top_mined item ids).
    mined_item_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
