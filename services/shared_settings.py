"""Per-project settings that every server on the database must agree on, kept in the database.

The selection strategy and its knobs, and the team settings (lease time, overlap share), are
rows of ``project_setting`` (:mod:`storage.settings.setting_models`), so two servers on one
PostgreSQL database read the same values. Earlier versions kept them in JSON files in
``BANANA_HOME/projects/project-<id>/``; :func:`import_setting_files` moves such a file into the
database once (renaming it ``*.imported``), unless the database already holds that setting.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from services.config import Settings
from services.database import Database
from services.errors import UserError
from storage import queries
from storage.settings import setting_queries

log = logging.getLogger(__name__)

SELECTION = "selection"  # {"strategy": ..., "config": {...}}
TEAM = "team"  # {"lease_seconds": ..., "overlap_share": ...}
_FILES = {SELECTION: "selection.json", TEAM: "team.json"}


def read_setting(db: Database, project_id: int, key: str) -> Any | None:
    """The stored value of setting ``key`` of the project, or None when it was never set."""
    with db.reading() as session:
        row = setting_queries.project_setting(session, project_id, key)
        return None if row is None else row.value


def write_setting(db: Database, project_id: int, key: str, value: Any, *, by: str | None = None) -> None:
    """Store setting ``key`` of the project (JSON-serialisable ``value``); ``by`` names the account."""
    with db.writing() as session:
        queries.lock_project(session, project_id)  # two writers of a new setting do not both insert
        setting_queries.set_project_setting(session, project_id, key, value, by=by)


def import_setting_files(db: Database, settings: Settings, project_id: int) -> None:
    """Move the project's settings files of earlier versions into the database, once.

    Raises
    ------
    UserError
        A file is not valid JSON: names the file and the fix.
    """
    folder = settings.home / "projects" / f"project-{project_id}"
    for key, name in _FILES.items():
        path = folder / name
        if not path.is_file():
            continue
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise UserError(
                f"{path}: {error}; fix or delete the file (its settings then start from defaults)"
            ) from None
        if read_setting(db, project_id, key) is None:
            write_setting(db, project_id, key, value, by=None)
            log.info("moved %s into the database (project setting %r)", path, key)
        path.rename(Path(f"{path}.imported"))
