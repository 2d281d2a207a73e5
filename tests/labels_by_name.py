"""Tests label by class name; below the UI banana labels by class id. These helpers look the
names up and go through the one label path (:mod:`services.labeling.write`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.database import Database
from services.errors import UserError
from services.labeling.write import LabelWrite, add_label, write_labels
from storage import queries
from storage.models import AnnotationSource, Item, LabelClass


@dataclass(frozen=True)
class NewLabel:
    item_id: int
    class_names: Sequence[str]
    supersedes_id: int | None = None


def class_ids(session: Session, item_id: int, names: Sequence[str]) -> tuple[tuple[int, ...], int]:
    """The ids of the item's project's classes called ``names`` (an unknown name: a UserError, as
    the write path gives for an unknown id), and the project id."""
    item = session.get(Item, item_id)
    if item is None:
        raise UserError(f"item {item_id} is not an ingested image of this project")
    found = dict(
        session.execute(
            select(LabelClass.name, LabelClass.id).where(
                LabelClass.project_id == item.project_id, LabelClass.name.in_(list(names))
            )
        ).all()
    )
    missing = [name for name in names if name not in found]
    if missing:
        raise UserError(f"project has no class {', '.join(map(repr, missing))}; add the class first")
    return tuple(found[name] for name in names), item.project_id


def record_annotations(
    db: Database,
    labels: Sequence[NewLabel],
    *,
    annotator: str | None,
    source: AnnotationSource = AnnotationSource.HUMAN,
) -> list[int]:
    with db.reading() as session:
        resolved = [class_ids(session, label.item_id, label.class_names) for label in labels]
    project_id = resolved[0][1] if resolved else 0
    return write_labels(
        db,
        project_id=project_id,
        annotator=annotator,
        source=source,
        labels=[LabelWrite(label.item_id, ids, label.supersedes_id) for label, (ids, _) in zip(labels, resolved)],
    )


def record_annotation(
    db: Database,
    *,
    item_id: int,
    class_names: Sequence[str],
    annotator: str | None,
    source: AnnotationSource = AnnotationSource.HUMAN,
    duration_ms: int | None = None,
    supersedes_id: int | None = None,
) -> int:
    with db.reading() as session:
        ids, project_id = class_ids(session, item_id, class_names)
    return write_labels(
        db,
        project_id=project_id,
        annotator=annotator,
        source=source,
        labels=[LabelWrite(item_id, ids, supersedes_id, duration_ms)],
    )[0]


def append_annotation(
    session: Session,
    *,
    item_id: int,
    class_names: Sequence[str],
    annotator: str | None,
    source: AnnotationSource,
    duration_ms: int | None,
    supersedes_id: int | None,
) -> int:
    """In the caller's write session (the engines are not told)."""
    ids, project_id = class_ids(session, item_id, class_names)
    annotator_id = queries.get_or_add_annotator(session, annotator).id if annotator is not None else None
    return add_label(
        session,
        project_id=project_id,
        item_id=item_id,
        class_ids=ids,
        annotator_id=annotator_id,
        source=source,
        duration_ms=duration_ms,
        supersedes_id=supersedes_id,
    )
