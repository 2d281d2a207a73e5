"""Create and look up projects."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.database import Database
from services.errors import UserError
from storage import queries
from storage.labels import label_queries
from storage.models import Item, Project
from storage.queries import ItemCounts


def ensure_project(
    db: Database, *, name: str, root: Path | None, root_if_new: Path, multi_label: bool | None = None
) -> Project:
    """Return project ``name``, creating it when it is new.

    Parameters
    ----------
    db : Database
    name : str
        Project name.
    root : Path or None
        Root the caller insists on; must match an existing project's root.
    root_if_new : Path
        Root for a new project when ``root`` is None.
    multi_label : bool or None
        Mode the caller insists on: True for multi-label, False for single-label; it must
        match an existing project's mode (never switched here). None: an existing
        project's mode, single-label for a new one.

    Returns
    -------
    Project
        With ``root_path`` resolved through links.

    Raises
    ------
    UserError
        When the name is empty, the root of a new project is not a folder,
        ``root`` differs from an existing project's root, or ``multi_label`` from its mode.
    """
    if not name.strip():
        raise UserError("project name is empty; pass --project NAME")
    try:
        return _ensure_project(db, name=name, root=root, root_if_new=root_if_new, multi_label=multi_label)
    except IntegrityError as error:
        # PostgreSQL runs writers side by side: another one created the project after our
        # check. It exists now, so the second look finds it.
        if "uq_project_name" not in str(error.orig):
            raise
        return _ensure_project(db, name=name, root=root, root_if_new=root_if_new, multi_label=multi_label)


def _ensure_project(
    db: Database, *, name: str, root: Path | None, root_if_new: Path, multi_label: bool | None
) -> Project:
    with db.writing() as session:
        project = queries.find_project(session, name)
        if project is None:
            new_root = Path(os.path.realpath(root if root is not None else root_if_new))
            if not new_root.is_dir():
                raise UserError(f"project {name!r} is new and its root {new_root} is not a folder; pass --root FOLDER")
            return queries.add_project(session, name=name, root_path=str(new_root), multi_label=bool(multi_label))
        if root is not None and Path(project.root_path) != Path(os.path.realpath(root)):
            raise UserError(
                f"project {name!r} has root {project.root_path}, not {root}; "
                "ingest files under that root, or use another --project name"
            )
        if multi_label is not None and project.multi_label != multi_label:
            raise UserError(_mode_mismatch(project))
        return project


def _mode_mismatch(project: Project) -> str:
    if project.multi_label:
        return (
            f"project {project.name!r} is multi-label, not single-label; leave out --single-label to add "
            "images to it, switch it to single-label on the app's Classes and settings page (allowed once "
            "no image carries more than one class), or use another --project name"
        )
    return (
        f"project {project.name!r} is single-label, not multi-label; leave out --multi-label to add images "
        "to it, switch it to multi-label on the app's Classes and settings page (its labels stay valid), "
        "or use another --project name"
    )


def set_multi_label(db: Database, name: str, multi_label: bool) -> bool:
    """Switch project ``name`` to multi-label (True) or single-label (False), in one transaction.

    Switching to multi-label is always allowed: a label of one class is a valid multi-label
    label. Switching to single-label is refused while any image's current label names more
    than one class, one being saved at that instant by another writer included (the two
    serialise on the project row). A running engine keeps its mode until it is rebuilt
    (:func:`services.engine.lifecycle.refresh_engine`).

    Returns
    -------
    bool
        Whether the mode changed (False when the project already had it).

    Raises
    ------
    UserError
        When the project does not exist, or it has images with several classes and
        ``multi_label`` is False (the message says how many).
    """
    with db.writing() as session:
        project = queries.find_project(session, name)
        if project is None:
            raise UserError(f"no project called {name!r}")
        # Before counting: a label naming several classes holds the row FOR SHARE while it is
        # saved (services.labeling.write.add_label), so this waits for those being saved to
        # commit (and the count sees them), and any saved after reads the new mode and refuses.
        project = queries.lock_project(session, project.id)
        if project.multi_label == multi_label:
            return False
        if not multi_label:
            several = _multi_class_images(session, project.id)
            if several:
                raise UserError(
                    f"project {name!r} stays multi-label: {several} image{'s' if several != 1 else ''} "
                    f"{'carry' if several != 1 else 'carries'} more than one class. Give each a single class "
                    "first (for example: export the labels on the Export / import page, keep one class per image, "
                    "import the file back), then switch again"
                )
        project.multi_label = multi_label
        return True


def _multi_class_images(session: Session, project_id: int) -> int:
    """How many of the project's images have a current label naming more than one class."""
    return sum(len(label.class_ids) > 1 for label in label_queries.current_labels(session, project_id).values())


def get_project(db: Database, name: str) -> Project:
    """Return project ``name``; raise UserError naming the known projects if it does not exist."""
    with db.reading() as session:
        project = queries.find_project(session, name)
        if project is None:
            known = ", ".join(repr(p.name) for p in queries.list_projects(session)) or "none yet"
            raise UserError(
                f"no project called {name!r} (projects: {known}); create it with: python -m app.cli ingest FOLDER --project {name}"
            )
        return project


def list_projects(db: Database) -> list[Project]:
    """Return every project, by name."""
    with db.reading() as session:
        return queries.list_projects(session)


def project_counts(db: Database, project: Project) -> ItemCounts:
    """Count the project's images, rejected files and duplicate files."""
    with db.reading() as session:
        return queries.item_counts(session, project.id)


def rejected_files(db: Database, project: Project, *, limit: int = 100) -> list[Item]:
    """Return up to ``limit`` of the project's rejected files, by path."""
    with db.reading() as session:
        return queries.error_items(session, project.id, limit=limit)
