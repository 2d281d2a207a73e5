"""Queries behind failure slices. Each takes a Session and never commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Result, insert, select
from sqlalchemy.orm import Session

from storage.slices.slice_models import FailureSlice, FailureSliceMetric, failure_slice_example


def find_slice(session: Session, project_id: int, name: str) -> FailureSlice | None:
    return session.scalar(select(FailureSlice).where(FailureSlice.project_id == project_id, FailureSlice.name == name))


def add_slice(
    session: Session,
    *,
    project_id: int,
    name: str,
    backbone_key: str,
    k: int,
    min_similarity: float,
    created_by: str | None,
    example_item_ids: Sequence[int],
) -> FailureSlice:
    found = FailureSlice(
        project_id=project_id,
        name=name,
        backbone_key=backbone_key,
        k=k,
        min_similarity=min_similarity,
        created_by=created_by,
    )
    session.add(found)
    session.flush()
    session.execute(
        insert(failure_slice_example),
        [{"failure_slice_id": found.id, "item_id": item_id} for item_id in sorted(set(example_item_ids))],
    )
    return found


def project_slices(session: Session, project_id: int) -> list[FailureSlice]:
    """The project's slices, oldest first."""
    return list(
        session.scalars(select(FailureSlice).where(FailureSlice.project_id == project_id).order_by(FailureSlice.id))
    )


def slice_examples(session: Session, slice_ids: Sequence[int]) -> dict[int, list[int]]:
    """Example item ids of each slice."""
    examples: dict[int, list[int]] = {slice_id: [] for slice_id in slice_ids}
    rows: Result[int, int] = session.execute(
        select(failure_slice_example.c.failure_slice_id, failure_slice_example.c.item_id)
        .where(failure_slice_example.c.failure_slice_id.in_(list(slice_ids)))
        .order_by(failure_slice_example.c.item_id)
    )
    for slice_id, item_id in rows:
        examples[slice_id].append(item_id)
    return examples


def has_metric(session: Session, slice_id: int, model_version_id: int) -> bool:
    return (
        session.scalar(
            select(FailureSliceMetric.id).where(
                FailureSliceMetric.failure_slice_id == slice_id, FailureSliceMetric.model_version_id == model_version_id
            )
        )
        is not None
    )


def add_metric(session: Session, *, slice_id: int, model_version_id: int, values: dict[str, Any]) -> None:
    session.add(FailureSliceMetric(failure_slice_id=slice_id, model_version_id=model_version_id, **values))
    session.flush()


def slice_metrics(session: Session, slice_ids: Sequence[int]) -> dict[int, list[FailureSliceMetric]]:
    """Each slice's metric rows, oldest model version first."""
    metrics: dict[int, list[FailureSliceMetric]] = {slice_id: [] for slice_id in slice_ids}
    rows = session.scalars(
        select(FailureSliceMetric)
        .where(FailureSliceMetric.failure_slice_id.in_(list(slice_ids)))
        .order_by(FailureSliceMetric.model_version_id)
    )
    for row in rows:
        metrics[row.failure_slice_id].append(row)
    return metrics
