"""Class actions: add, rename, merge, archive, restore. One transaction each.

Each tells the project's engines in this process once it is committed
(:mod:`services.engine.registry`); engines of other processes see it at their next poll.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from services.database import Database
from services.engine.project_engine import ProjectEngine
from services.engine.registry import announce_classes, announce_labels
from services.errors import UserError
from services.labeling.class_names import case_twin, checked_class_name
from services.labeling.write import add_label
from services.projects import get_project
from storage import queries
from storage.labels import label_queries
from storage.labels.label_queries import CurrentLabel
from storage.models import AnnotationSource, LabelClass, Project


def add_label_class(db: Database, *, project: Project, name: str) -> LabelClass:
    """Add class ``name`` to ``project``.

    Raises
    ------
    UserError
        When the name breaks a rule of :mod:`services.labeling.class_names` or the project already
        has the class, or one that differs from it only in case.
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
                raise UserError(
                    f"project {project.name!r} already has a class called {twin!r}, which differs from "
                    f"{name!r} only in case; use {twin!r}, or choose a name that differs by more"
                )
            added = queries.add_label_class(session, project.id, name)
    except IntegrityError as error:
        # PostgreSQL runs writers side by side: another one may add the name after the check.
        if "uq_label_class_project_id_name" in str(error.orig):
            raise taken from None
        raise
    announce_classes(db, project.id)
    return added


def add_class(engine: ProjectEngine, name: str) -> None:
    add_label_class(engine.db, project=get_project(engine.db, engine.project_name), name=name)


def rename_class(engine: ProjectEngine, class_id: int, name: str) -> None:
    """Rename a class; its labels follow (they refer to the class, not its name). The new name
    follows the rules of :mod:`services.labeling.class_names`."""
    name = checked_class_name(name)
    taken = UserError(f"there is already a class called {name!r}; merge the two classes instead")
    try:
        with engine.db.writing() as session:
            queries.lock_project(session, engine.project_id)  # renames and adds take turns: see add_label_class
            classes = label_queries.label_classes(session, engine.project_id, include_archived=True)
            twin = case_twin(name, [c.name for c in classes if c.id != class_id])
            if twin == name:
                raise taken
            if twin is not None:
                raise UserError(
                    f"there is already a class called {twin!r}, which differs from {name!r} only in "
                    "case; merge the two classes instead, or choose a name that differs by more"
                )
            label_queries.set_class_name(session, class_id, name)
    except IntegrityError as error:
        # PostgreSQL runs writers side by side: another rename may take the name after the check.
        if "uq_label_class_project_id_name" in str(error.orig):
            raise taken from None
        raise
    announce_classes(engine.db, engine.project_id)


def set_archived(engine: ProjectEngine, class_id: int, archived: bool) -> None:
    """Archive a class (it keeps its labels but is no longer offered), or restore it."""
    with engine.db.writing() as session:
        label_queries.set_class_archived(session, class_id, archived)
    announce_classes(engine.db, engine.project_id)


def merge_classes(engine: ProjectEngine, *, source_id: int, target_id: int, annotator: str) -> int:
    """Relabel every image of class ``source_id`` as ``target_id`` and archive the source class.

    Each relabeled image gets a new ``review`` annotation that supersedes its current one,
    all in one transaction. Returns how many images were relabeled.
    """
    if source_id == target_id:
        raise UserError("choose two different classes to merge")
    db: Database = engine.db
    moved: dict[int, CurrentLabel] = {}
    with db.writing() as session:
        active = {c.id for c in label_queries.label_classes(session, engine.project_id)}
        if source_id not in active or target_id not in active:
            raise UserError("both classes must exist and be active; restore an archived class first")
        annotator_id = queries.get_or_add_annotator(session, annotator).id
        for item_id, label in label_queries.current_labels(session, engine.project_id).items():
            if source_id in label.class_ids:
                classes = tuple(sorted((set(label.class_ids) - {source_id}) | {target_id}))
                annotation_id = add_label(
                    session,
                    project_id=engine.project_id,
                    item_id=item_id,
                    class_ids=classes,
                    annotator_id=annotator_id,
                    source=AnnotationSource.REVIEW,
                    supersedes_id=label.annotation_id,
                )
                moved[item_id] = CurrentLabel(annotation_id, classes)
        label_queries.set_class_archived(session, source_id, True)
    announce_classes(db, engine.project_id)
    announce_labels(db, engine.project_id, moved)
    return len(moved)
