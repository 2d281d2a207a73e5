"""Queries behind the label-issue queue. Each takes a Session and never commits."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Annotation, AnnotationSource


def review_annotation_ids(session: Session, annotation_ids: Iterable[int]) -> set[int]:
    """Those of ``annotation_ids`` that a reviewer gave (source ``review``)."""
    ids = list(annotation_ids)
    found: set[int] = set()
    for start in range(0, len(ids), 500):  # stays under SQLite's bound-parameter limit
        found.update(session.scalars(select(Annotation.id).where(Annotation.id.in_(ids[start : start + 500]),
                                                                 Annotation.source == AnnotationSource.REVIEW)))
    return found
