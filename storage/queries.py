"""Queries over the banana schema. Each takes a Session and never commits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar, cast

from sqlalchemy import CursorResult, Result, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.models import (
    Annotation,
    AnnotationSource,
    Annotator,
    DuplicateFile,
    Item,
    ItemStatus,
    LabelClass,
    Project,
)

CHUNK = 500  # values per IN (...) list: SQLite builds before 3.32 allow 999 bound parameters per statement
Value = TypeVar("Value")


def in_chunks(values: Iterable[Value], size: int = CHUNK) -> Iterator[list[Value]]:
    """``values`` in lists of at most ``size``: one query per list keeps an IN (...) of any
    length under the databases' bound-parameter limits (SQLite 999 or 32766, PostgreSQL 65535)."""
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start : start + size]


def rowcount(result: Result[Any]) -> int:
    """The number of rows an UPDATE or DELETE without RETURNING matched. ``Session.execute`` returns
    a CursorResult for those but is typed to return a Result; SQLAlchemy (2.0.44 on) says to cast."""
    return cast(CursorResult[Any], result).rowcount


# --- projects -----------------------------------------------------------------


def class_sets(rows: Iterable[Sequence[Any]]) -> dict[int, tuple[tuple[Any, ...], tuple[int, ...]]]:
    """Group annotation rows joined to their classes: each row is ``(annotation id, *head, class id)``,
    one per class of the annotation (class id None when it names none, from an outer join) ->
    annotation id -> (head, sorted class ids). Every query that reads class sets groups them here."""
    found: dict[int, tuple[tuple[Any, ...], list[int]]] = {}
    for annotation_id, *head, class_id in rows:
        entry = found.setdefault(annotation_id, (tuple(head), []))
        if class_id is not None:
            entry[1].append(class_id)
    return {annotation_id: (head, tuple(sorted(ids))) for annotation_id, (head, ids) in found.items()}


def find_project(session: Session, name: str) -> Project | None:
    """Return the project called ``name``, or None."""
    return session.scalar(select(Project).where(Project.name == name))


def lock_project(session: Session, project_id: int, *, shared: bool = False) -> Project:
    """Re-read the project row under a row lock held until the transaction ends; return it.

    ``shared``: ``FOR SHARE``, which many transactions hold at once; else ``FOR NO KEY
    UPDATE``, which waits for them (and they for it) but not for rows that merely reference
    the project. On SQLite, whose writers are serialised already, it is a plain re-read.
    """
    lock = {"read": True} if shared else {"key_share": True}
    project = session.get(Project, project_id, with_for_update=lock, populate_existing=True)
    if project is None:
        raise LookupError(f"no project with id {project_id}")
    return project


def add_project(session: Session, *, name: str, root_path: str, multi_label: bool = False) -> Project:
    """Add a project and return it with its id."""
    project = Project(name=name, root_path=root_path, multi_label=multi_label)
    session.add(project)
    session.flush()
    return project


def list_projects(session: Session) -> list[Project]:
    """Return every project, by name."""
    return list(session.scalars(select(Project).order_by(Project.name)))


# --- items and ingest ---------------------------------------------------------


class KnownFile(NamedTuple):
    """A path ingest has seen before: an item (ok or error) or a duplicate."""

    item_id: int
    status: ItemStatus | None  # None for a duplicate file
    size_bytes: int
    mtime_ns: int


def known_files(session: Session, project_id: int) -> dict[str, KnownFile]:
    """Map every path already recorded for the project to what is known about it."""
    # Core rows, not ORM rows: this runs over every file of a project on each re-run.
    connection = session.connection()
    known = {
        path: KnownFile(item_id, status, size, mtime)
        for path, item_id, status, size, mtime in connection.execute(
            select(Item.path, Item.id, Item.status, Item.size_bytes, Item.mtime_ns).where(Item.project_id == project_id)
        )
    }
    known.update(
        (path, KnownFile(item_id, None, size, mtime))
        for path, item_id, size, mtime in connection.execute(
            select(DuplicateFile.path, DuplicateFile.item_id, DuplicateFile.size_bytes, DuplicateFile.mtime_ns).where(
                DuplicateFile.project_id == project_id
            )
        )
    )
    return known


def item_ids_by_sha256(session: Session, project_id: int) -> dict[str, int]:
    """Map the content hash of every ingested image of the project to its item id."""
    rows = session.execute(select(Item.sha256, Item.id).where(Item.project_id == project_id, Item.sha256.is_not(None)))
    return {sha256: item_id for sha256, item_id in rows if sha256 is not None}


def insert_items(session: Session, rows: Sequence[Mapping[str, Any]]) -> list[tuple[int, str | None]]:
    """Insert item rows (dicts of column values); return ``(id, sha256)`` per row."""
    if not rows:
        return []
    return [
        (item_id, sha256)
        for item_id, sha256 in session.execute(insert(Item).returning(Item.id, Item.sha256), list(rows))
    ]


def update_item(session: Session, item_id: int, values: Mapping[str, Any]) -> None:
    """Set column values on one item."""
    session.execute(update(Item).where(Item.id == item_id).values(**values))


def delete_items(session: Session, item_ids: Iterable[int]) -> None:
    """Delete items; used only for error rows whose file turned out to be a duplicate."""
    for chunk in in_chunks(item_ids):
        session.execute(delete(Item).where(Item.id.in_(chunk), Item.status == ItemStatus.ERROR))


def insert_duplicate_files(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert duplicate-file rows (dicts of column values)."""
    if rows:
        session.execute(insert(DuplicateFile), list(rows))


@dataclass(frozen=True)
class ItemCounts:
    """How many files of a project are ingested, rejected and duplicates."""

    ok: int
    error: int
    duplicate_files: int


def item_counts(session: Session, project_id: int) -> ItemCounts:
    """Count a project's items by status, and its duplicate files."""
    by_status = dict(
        session.execute(
            select(Item.status, func.count()).where(Item.project_id == project_id).group_by(Item.status)
        ).all()
    )
    duplicates = session.scalar(
        select(func.count()).select_from(DuplicateFile).where(DuplicateFile.project_id == project_id)
    )
    return ItemCounts(
        ok=by_status.get(ItemStatus.OK, 0), error=by_status.get(ItemStatus.ERROR, 0), duplicate_files=duplicates or 0
    )


def error_items(session: Session, project_id: int, *, limit: int = 100) -> list[Item]:
    """Return up to ``limit`` rejected files of a project, by path."""
    return list(
        session.scalars(
            select(Item)
            .where(Item.project_id == project_id, Item.status == ItemStatus.ERROR)
            .order_by(Item.path)
            .limit(limit)
        )
    )


# --- classes, annotators, annotations ------------------------------------------


def get_or_add_annotator(session: Session, name: str) -> Annotator:
    """Return the annotator called ``name``, adding it if new."""
    annotator = session.scalar(select(Annotator).where(Annotator.name == name))
    if annotator is None:
        # On PostgreSQL another transaction may add the same name at the same moment;
        # the savepoint keeps this transaction usable, and the name is then theirs to read.
        try:
            with session.begin_nested():
                annotator = Annotator(name=name)
                session.add(annotator)
        except IntegrityError:
            annotator = session.scalar(select(Annotator).where(Annotator.name == name))
            if annotator is None:  # the insert failed for another reason than the name being taken
                raise
    return annotator


def add_label_class(session: Session, project_id: int, name: str) -> LabelClass:
    """Add a class to a project and return it with its id."""
    label_class = LabelClass(project_id=project_id, name=name)
    session.add(label_class)
    session.flush()
    return label_class


def label_classes_by_name(session: Session, project_id: int, names: Iterable[str]) -> dict[str, LabelClass]:
    """Return the project's classes among ``names``, keyed by name; unknown names are absent."""
    return {
        label_class.name: label_class
        for label_class in session.scalars(
            select(LabelClass).where(LabelClass.project_id == project_id, LabelClass.name.in_(list(names)))
        )
    }


def add_annotation(
    session: Session,
    *,
    item_id: int,
    label_classes: Sequence[LabelClass],
    source: AnnotationSource,
    annotator_id: int | None = None,
    duration_ms: int | None = None,
    supersedes_id: int | None = None,
) -> Annotation:
    """Append one annotation stating the item's whole class set; return it with its id."""
    annotation = Annotation(
        item_id=item_id,
        annotator_id=annotator_id,
        source=source,
        duration_ms=duration_ms,
        supersedes_id=supersedes_id,
        classes=list(label_classes),
    )
    session.add(annotation)
    session.flush()
    return annotation


def latest_annotation(session: Session, item_id: int) -> Annotation | None:
    """Return the item's newest annotation, which holds its current label."""
    return session.scalar(
        select(Annotation).where(Annotation.item_id == item_id).order_by(Annotation.id.desc()).limit(1)
    )
