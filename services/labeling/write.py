"""The one path by which a label is written.

Every label goes through here: a keyboard answer and its undo, a grid accept, a review decision,
a label-issue verdict, an import, a class merge. :func:`write_labels` is one user action: class
ids in, the lease and review checks, one transaction, and once it is committed every engine of
the project in this process takes the new labels (:mod:`services.engine.registry`); engines of
other processes find them when they next poll the database. Actions that change other rows in
the same transaction (an import, a merge) call :func:`add_label` inside their own and
:func:`~services.engine.registry.announce_labels` after it. Pages and CLI commands never tell an
engine about a label themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, SessionTransaction

from services.database import Database
from services.engine.registry import announce_labels
from services.errors import UserError
from services.teams.disagreement import open_if_disagreement
from storage import queries
from storage.labels import label_queries
from storage.labels.label_queries import CurrentLabel
from storage.models import Annotation, AnnotationSource, Item, ItemStatus, Project
from storage.teams import lease_queries, review_queries
from storage.types import utc_now

_NEEDS_ANNOTATOR = (AnnotationSource.HUMAN, AnnotationSource.UNDO, AnnotationSource.REVIEW)


class LeaseLost(UserError):
    """The annotator no longer holds the ask: it lapsed and someone else took it, or it was given back."""


@dataclass(frozen=True)
class LabelWrite:
    """One label: the item's whole class set (empty clears it), the annotation it supersedes (the
    item's newest, when it has one) and the time the annotator spent on it."""

    item_id: int
    class_ids: tuple[int, ...]
    supersedes_id: int | None = None
    duration_ms: int | None = None


@dataclass(frozen=True)
class HeldLease:
    """The lease a labeling session holds on the item (:mod:`services.teams.leases`).

    A ``human`` label marks it labeled, or fails with :class:`LeaseLost` when the annotator no
    longer holds it; an ``undo`` holds the item again until ``expires_at``.
    """

    annotator_id: int
    overlap: bool
    lease_seconds: int
    expires_at: datetime


@dataclass(frozen=True)
class ReviewTask:
    """The open review task a ``review`` label decides; only the first reviewer's decision counts."""

    task_id: int
    round: int


def write_labels(
    db: Database,
    *,
    project_id: int,
    labels: Sequence[LabelWrite],
    annotator: str | None,
    source: AnnotationSource = AnnotationSource.HUMAN,
    lease: HeldLease | None = None,
    review: ReviewTask | None = None,
) -> list[int]:
    """Write the labels in one transaction and tell the project's engines; return the annotation ids.

    Parameters
    ----------
    db : Database
    project_id : int
        Every item must belong to this project.
    labels : sequence of LabelWrite
    annotator : str or None
        Who labeled; required for human, undo and review labels, added if new.
    source : AnnotationSource
    lease : HeldLease, optional
        The lease held on each item (labeling sessions); a human label of an item whose labels now
        disagree with another annotator's opens its review task.
    review : ReviewTask, optional
        The task a review label decides; each label then supersedes the item's newest annotation.

    Returns
    -------
    list of int
        The new annotation ids, in order; durable when this returns.

    Raises
    ------
    UserError
        When any label breaks a rule of :func:`add_label` (then none is written).
    LeaseLost
        When ``lease`` is no longer held.
    """
    now = utc_now()
    with db.writing() as session:
        annotator_id = queries.get_or_add_annotator(session, annotator).id if annotator is not None else None
        if review is not None:
            if annotator_id is None:
                raise UserError("a review decision needs the reviewer's name")
            if not review_queries.resolve_task(
                session, task_id=review.task_id, round=review.round, reviewer_id=annotator_id, now=now
            ):
                paths = ", ".join(_item(session, label.item_id, project_id).path for label in labels)
                raise UserError(
                    f"{paths} was decided by another reviewer meanwhile (or its labels changed); "
                    "the queue shows what is still open"
                )
        ids = []
        for label in labels:
            if (
                lease is not None
                and source is AnnotationSource.HUMAN
                and not lease_queries.mark_labeled(
                    session, annotator_id=lease.annotator_id, item_id=label.item_id, overlap=lease.overlap, now=now
                )
            ):
                raise LeaseLost(
                    f"{_item(session, label.item_id, project_id).path} is no longer yours to label: it was "
                    f"left for over {lease.lease_seconds // 60} minutes and someone else took it over"
                )
            supersedes_id = label.supersedes_id
            if review is not None:
                newest = queries.latest_annotation(session, label.item_id)
                supersedes_id = newest.id if newest is not None else None
            ids.append(
                add_label(
                    session,
                    project_id=project_id,
                    item_id=label.item_id,
                    class_ids=label.class_ids,
                    annotator_id=annotator_id,
                    source=source,
                    duration_ms=label.duration_ms,
                    supersedes_id=supersedes_id,
                )
            )
            if lease is not None and source is AnnotationSource.HUMAN:
                open_if_disagreement(session, project_id=project_id, item_id=label.item_id, now=now)
            if lease is not None and source is AnnotationSource.UNDO:
                lease_queries.reopen(
                    session,
                    annotator_id=lease.annotator_id,
                    item_id=label.item_id,
                    overlap=lease.overlap,
                    now=now,
                    expires_at=lease.expires_at,
                )
            if review is not None:
                review_queries.set_decision(session, task_id=review.task_id, annotation_id=ids[-1])
    announce_labels(
        db,
        project_id,
        {
            label.item_id: CurrentLabel(annotation_id, tuple(sorted(set(label.class_ids))))
            for label, annotation_id in zip(labels, ids)
        },
    )
    return ids


def add_label(
    session: Session,
    *,
    project_id: int,
    item_id: int,
    class_ids: Sequence[int],
    annotator_id: int | None,
    source: AnnotationSource,
    duration_ms: int | None = None,
    supersedes_id: int | None = None,
) -> int:
    """Check one label and add it in the caller's write session; return the annotation id.

    The rules: the item is an ingested image of the project; every class is one of the project's,
    unarchived; more than one class only in a multi-label project; ``supersedes_id`` is an
    annotation of the same item; human, undo and review labels name their annotator.

    Raises
    ------
    UserError
        When a rule does not hold; the message names the image and the class.
    """
    wanted = sorted(set(class_ids))
    if annotator_id is None and source in _NEEDS_ANNOTATOR:
        raise UserError(f"a {source.value} annotation needs the annotator's name")
    item = _item(session, item_id, project_id)
    project = _project(session, project_id)
    classes = label_queries.label_classes_by_id(session, project_id, wanted)
    missing = [c for c in wanted if c not in classes]
    if missing:
        raise UserError(
            f"{item.path} was not labeled: project {project.name!r} has no class with id "
            f"{', '.join(map(str, missing))} (it may have been merged away); reload the page"
        )
    names = [classes[c].name for c in wanted]
    if len(wanted) > 1:
        if not project.multi_label:
            raise UserError(
                f"{item.path} was not labeled: project {project.name!r} is single-label; "
                f"choose one class, not {', '.join(names)}"
            )
        if not _locked_project_row(session, project.id).multi_label:
            raise UserError(
                f"{item.path} was not labeled: project {project.name!r} became single-label just now; "
                f"choose one class, not {', '.join(names)}"
            )
    archived = [classes[c].name for c in wanted if classes[c].archived_at is not None]
    if archived:
        raise UserError(f"class {', '.join(map(repr, archived))} is archived; restore it or choose another class")
    if supersedes_id is not None:
        superseded = session.get(Annotation, supersedes_id)
        if superseded is None or superseded.item_id != item_id:
            raise UserError(
                f"annotation {supersedes_id} is not an annotation of item {item_id}; it cannot be superseded here"
            )
    annotation = queries.add_annotation(
        session,
        item_id=item_id,
        label_classes=[classes[c] for c in wanted],
        source=source,
        annotator_id=annotator_id,
        duration_ms=duration_ms,
        supersedes_id=supersedes_id,
    )
    return annotation.id


def _item(session: Session, item_id: int, project_id: int) -> Item:
    item = session.get(Item, item_id)
    if item is None or item.project_id != project_id or item.status is not ItemStatus.OK:
        raise UserError(
            f"item {item_id} is not an ingested image of this project (it may be a rejected file); "
            "only ingested images can be labeled"
        )
    return item


def _project(session: Session, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise LookupError(f"no project with id {project_id}")
    return project


_SHARED_PROJECT_LOCKS = "banana.shared_project_locks"


def _locked_project_row(session: Session, project_id: int) -> Project:
    """The project re-read under ``FOR SHARE``, held until the transaction ends (once per transaction).

    Only labels naming several classes take it: :func:`services.projects.set_multi_label`
    locks the row before counting such labels, so a switch to single-label and such a label
    saved at the same instant serialise on PostgreSQL (READ COMMITTED) too; whichever commits
    second sees the first. Labels of several classes never wait for each other (shared locks),
    and a label of one class, valid in either mode, takes no lock at all.
    """
    transaction = session.get_transaction()
    held: tuple[SessionTransaction | None, set[int]] | None = session.info.get(_SHARED_PROJECT_LOCKS)
    if held is None or held[0] is not transaction:
        held = session.info[_SHARED_PROJECT_LOCKS] = (transaction, set())
    if project_id in held[1]:
        return _project(session, project_id)
    project = queries.lock_project(session, project_id, shared=True)
    held[1].add(project_id)
    return project
