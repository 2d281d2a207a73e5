"""Class actions: add, rename, merge, archive, restore. One transaction each."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from services.labeling.class_names import case_twin, checked_class_name
from services.database import Database
from services.engine.project_engine import ProjectEngine
from services.errors import UserError
from services.labeling.labels import add_label_class, append_annotation
from services.projects import get_project
from storage.labels import label_queries
from storage import queries
from storage.models import AnnotationSource


def add_class(engine: ProjectEngine, name: str) -> None:
    add_label_class(engine.db, project=get_project(engine.db, engine.project_name), name=name)
    engine.reload_classes()


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
                raise UserError(f"there is already a class called {twin!r}, which differs from {name!r} only in "
                                "case; merge the two classes instead, or choose a name that differs by more")
            label_queries.set_class_name(session, class_id, name)
    except IntegrityError as error:
        # PostgreSQL runs writers side by side: another rename may take the name after the check.
        if "uq_label_class_project_id_name" in str(error.orig):
            raise taken from None
        raise
    engine.reload_classes()


def set_archived(engine: ProjectEngine, class_id: int, archived: bool) -> None:
    """Archive a class (it keeps its labels but is no longer offered), or restore it."""
    with engine.db.writing() as session:
        label_queries.set_class_archived(session, class_id, archived)
    engine.reload_classes()


def merge_classes(engine: ProjectEngine, *, source_id: int, target_id: int, annotator: str) -> int:
    """Relabel every image of class ``source_id`` as ``target_id`` and archive the source class.

    Each relabeled image gets a new ``review`` annotation that supersedes its current one,
    all in one transaction. Returns how many images were relabeled.
    """
    if source_id == target_id:
        raise UserError("choose two different classes to merge")
    db: Database = engine.db
    with db.writing() as session:
        names = {c.id: c.name for c in label_queries.label_classes(session, engine.project_id)}
        if source_id not in names or target_id not in names:
            raise UserError("both classes must exist and be active; restore an archived class first")
        current = label_queries.current_labels(session, engine.project_id)
        moved = 0
        for item_id, label in current.items():
            if source_id in label.class_ids:
                classes = (set(label.class_ids) - {source_id}) | {target_id}
                append_annotation(session, item_id=item_id, class_names=[names[c] for c in classes],
                                  annotator=annotator, source=AnnotationSource.REVIEW, duration_ms=None,
                                  supersedes_id=label.annotation_id)
                moved += 1
        label_queries.set_class_archived(session, source_id, True)
    engine.reload_classes()
    engine.reload_labels()
    return moved
