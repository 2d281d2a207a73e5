"""Create and look up projects."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from services.database import Database
from services.errors import UserError
from storage import queries
from storage.models import Item, Project
from storage.queries import ItemCounts


def ensure_project(db: Database, *, name: str, root: Path | None, root_if_new: Path) -> Project:
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

    Returns
    -------
    Project
        With ``root_path`` resolved through links.

    Raises
    ------
    UserError
        When the name is empty, the root of a new project is not a folder,
        or ``root`` differs from an existing project's root.
    """
    if not name.strip():
        raise UserError("project name is empty; pass --project NAME")
    try:
        return _ensure_project(db, name=name, root=root, root_if_new=root_if_new)
    except IntegrityError as error:
        # PostgreSQL runs writers side by side: another one created the project after our
        # check. It exists now, so the second look finds it.
        if "uq_project_name" not in str(error.orig):
            raise
        return _ensure_project(db, name=name, root=root, root_if_new=root_if_new)


def _ensure_project(db: Database, *, name: str, root: Path | None, root_if_new: Path) -> Project:
    with db.writing() as session:
        project = queries.find_project(session, name)
        if project is None:
            new_root = Path(os.path.realpath(root if root is not None else root_if_new))
            if not new_root.is_dir():
                raise UserError(f"project {name!r} is new and its root {new_root} is not a folder; pass --root FOLDER")
            return queries.add_project(session, name=name, root_path=str(new_root))
        if root is not None and Path(project.root_path) != Path(os.path.realpath(root)):
            raise UserError(
                f"project {name!r} has root {project.root_path}, not {root}; "
                "ingest files under that root, or use another --project name"
            )
        return project


def get_project(db: Database, name: str) -> Project:
    """Return project ``name``; raise UserError naming the known projects if it does not exist."""
    with db.reading() as session:
        project = queries.find_project(session, name)
        if project is None:
            known = ", ".join(repr(p.name) for p in queries.list_projects(session)) or "none yet"
            raise UserError(f"no project called {name!r} (projects: {known}); create it with: python -m app.cli ingest FOLDER --project {name}")
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
