"""Read and write per-project settings (``storage.settings.setting_models``). Queries never commit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.settings.setting_models import ProjectSetting


def project_setting(session: Session, project_id: int, key: str) -> ProjectSetting | None:
    """The row of setting ``key`` of the project, or None when it was never set."""
    return session.scalar(
        select(ProjectSetting).where(ProjectSetting.project_id == project_id, ProjectSetting.key == key)
    )


def set_project_setting(session: Session, project_id: int, key: str, value: Any, *, by: str | None) -> ProjectSetting:
    """Insert or update setting ``key`` of the project; the caller holds the project row's lock
    (``queries.lock_project``) so that two writers do not both insert."""
    row = project_setting(session, project_id, key)
    if row is None:
        row = ProjectSetting(project_id=project_id, key=key, value=value, updated_by=by)
        session.add(row)
    else:
        row.value, row.updated_by = value, by
    session.flush()
    return row
