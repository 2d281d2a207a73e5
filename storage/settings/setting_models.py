"""Per-project settings that every server on the database must agree on (the project's backbone).

One row per (project, key); ``value`` is JSON. Kept in the database, not in files beside one
server, so two servers on one PostgreSQL database read the same choice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base
from storage.types import UtcDateTime, utc_now


class ProjectSetting(Base):
    """One setting of one project; ``updated_by`` names the account that set it (None: the system)."""

    __tablename__ = "project_setting"
    __table_args__ = (UniqueConstraint("project_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    key: Mapped[str] = mapped_column(String(64))
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, onupdate=utc_now)
    updated_by: Mapped[str | None] = mapped_column(String(200))
