"""Queries behind the label-issue queue. Each takes a Session and never commits."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Annotation, AnnotationSource
from storage.queries import in_chunks


def review_annotation_ids(session: Session, annotation_ids: Iterable[int]) -> set[int]:
    """Those of ``annotation_ids`` that a reviewer gave (source ``review``)."""
    found: set[int] = set()
    for chunk in in_chunks(annotation_ids):
        found.update(
            session.scalars(
                select(Annotation.id).where(Annotation.id.in_(chunk), Annotation.source == AnnotationSource.REVIEW)
            )
        )
    return found
