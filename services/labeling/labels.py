"""Classes and annotations, one short transaction per user action."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.labeling.class_names import case_twin, checked_class_name
from services.database import Database
from services.errors import UserError
from storage.labels import label_queries
from storage import queries
from storage.models import Annotation, AnnotationSource, Item, ItemStatus, LabelClass, Project


def add_label_class(db: Database, *, project: Project, name: str) -> LabelClass:
    """Add class ``name`` to ``project``.

    Raises
    ------
    UserError
        When the name breaks a rule of :mod:`services.labeling.class_names` or the project already has the
        class, or one that differs from it only in case.
    """
    name = checked_class_name(name)
    taken = UserError(f"project {project.name!r} already has a class called {name!r}")
    try:
        with db.writing() as session:
            # Adders of one project take turns (PostgreSQL runs writers side by side), so the second
            # sees the first's class: the unique key alone would let a case twin in.
            queries.lock_project(session, project.id)
            classes = label_queries.label_classes(session, project.id, include_archived=True)
            twin = case_twin(name, [c.name for c in classes])
            if twin == name:
                raise taken
            if twin is not None:
                raise UserError(f"project {project.name!r} already has a class called {twin!r}, which differs from "
                                f"{name!r} only in case; use {twin!r}, or choose a name that differs by more")
            return queries.add_label_class(session, project.id, name)
    except IntegrityError as error:
        # PostgreSQL runs writers side by side: another one may add the name after the check.
        if "uq_label_class_project_id_name" in str(error.orig):
            raise taken from None
        raise


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
    """Append an annotation and return its id once it is committed.

    Parameters
    ----------
    db : Database
    item_id : int
        An ingested (not rejected) item.
    class_names : sequence of str
        The item's whole class set; empty clears the label. More than one
        only in a multi-label project. Every class must exist, unarchived.
    annotator : str or None
        Who labeled; required for human and review annotations, added if new.
    source : AnnotationSource
    duration_ms : int, optional
        Time the annotator spent on the item.
    supersedes_id : int, optional
        The item's annotation this one corrects or undoes.

    Returns
    -------
    int
        The new annotation's id; when this returns, the row is durable.

    Raises
    ------
    UserError
        When any of the conditions above does not hold.
    """
    with db.writing() as session:
        return append_annotation(session, item_id=item_id, class_names=class_names, annotator=annotator,
                                  source=source, duration_ms=duration_ms, supersedes_id=supersedes_id)


@dataclass(frozen=True)
class NewLabel:
    """One annotation for :func:`record_annotations`: the item, its whole class set, and
    the annotation it supersedes (the item's newest, if it has one)."""

    item_id: int
    class_names: Sequence[str]
    supersedes_id: int | None = None


def record_annotations(db: Database, labels: Sequence[NewLabel], *, annotator: str | None,
                       source: AnnotationSource = AnnotationSource.HUMAN) -> list[int]:
    """Append several annotations in one transaction (one user action, e.g. accepting a grid).

    Same rules as :func:`record_annotation`; if any label breaks one, none is written.

    Returns
    -------
    list of int
        The new annotation ids, in order; durable when this returns.
    """
    with db.writing() as session:
        return [append_annotation(session, item_id=label.item_id, class_names=label.class_names, annotator=annotator,
                                   source=source, duration_ms=None, supersedes_id=label.supersedes_id)
                for label in labels]


def append_annotation(session: Session, *, item_id: int, class_names: Sequence[str], annotator: str | None,
                       source: AnnotationSource, duration_ms: int | None, supersedes_id: int | None) -> int:
    """Check one annotation against the rules of :func:`record_annotation` and add it in the
    caller's write session (for actions that change more than annotations in one transaction)."""
    wanted = sorted(set(class_names))
    if annotator is None and source in (AnnotationSource.HUMAN, AnnotationSource.UNDO, AnnotationSource.REVIEW):
        raise UserError(f"a {source.value} annotation needs the annotator's name")
    item = session.get(Item, item_id)
    if item is None or item.status is not ItemStatus.OK:
        raise UserError(f"item {item_id} does not exist or is a rejected file; only ingested images can be labeled")
    project = session.get(Project, item.project_id)
    if len(wanted) > 1:
        if not project.multi_label:
            raise UserError(f"{item.path} was not labeled: project {project.name!r} is single-label; "
                            f"choose one class, not {', '.join(wanted)}")
        if not _locked_project_row(session, project.id).multi_label:
            raise UserError(f"{item.path} was not labeled: project {project.name!r} became single-label just now; "
                            f"choose one class, not {', '.join(wanted)}")
    classes = queries.label_classes_by_name(session, project.id, wanted)
    missing = [name for name in wanted if name not in classes]
    if missing:
        raise UserError(f"project {project.name!r} has no class {', '.join(map(repr, missing))}; add the class first")
    archived = [name for name in wanted if classes[name].archived_at is not None]
    if archived:
        raise UserError(f"class {', '.join(map(repr, archived))} is archived; restore it or choose another class")
    if supersedes_id is not None:
        superseded = session.get(Annotation, supersedes_id)
        if superseded is None or superseded.item_id != item_id:
            raise UserError(f"annotation {supersedes_id} is not an annotation of item {item_id}; it cannot be superseded here")
    annotator_id = queries.get_or_add_annotator(session, annotator).id if annotator is not None else None
    annotation = queries.add_annotation(
        session,
        item_id=item_id,
        label_classes=[classes[name] for name in wanted],
        source=source,
        annotator_id=annotator_id,
        duration_ms=duration_ms,
        supersedes_id=supersedes_id,
    )
    return annotation.id


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
    held = session.info.get(_SHARED_PROJECT_LOCKS)
    if held is None or held[0] is not transaction:
        held = session.info[_SHARED_PROJECT_LOCKS] = (transaction, set())
    if project_id in held[1]:
        return session.get(Project, project_id)
    project = queries.lock_project(session, project_id, shared=True)
    held[1].add(project_id)
    return project
