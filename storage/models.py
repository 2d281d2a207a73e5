"""The banana schema as SQLAlchemy 2.0 typed models.

Labels are append-only: an :class:`Annotation` states an item's whole class set
at one moment (several classes in a multi-label project, none to clear the
label) through the ``annotation_class`` association table. A correction or an
undo is a new row whose ``supersedes_id`` names the row it replaces; the item's
current label is its newest row. Database triggers refuse UPDATE and DELETE on
``annotation`` and ``annotation_class``.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Enum,
    ForeignKey,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage.types import UtcDateTime, utc_now

# Stable constraint names let Alembic alter tables on SQLite (batch mode) and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _enum_column(enum_class: type[enum.Enum]) -> Enum:
    # Stored as plain strings so new members need no native-enum migration on PostgreSQL.
    return Enum(
        enum_class,
        native_enum=False,
        length=16,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class ItemStatus(enum.Enum):
    """Whether an item's file was ingested (``ok``) or rejected (``error``)."""

    OK = "ok"
    ERROR = "error"


class AnnotationSource(enum.Enum):
    """Who or what produced an annotation."""

    HUMAN = "human"
    IMPORT = "import"
    PROPAGATED = "propagated"
    REVIEW = "review"
    # An undo: the item's earlier class set becomes its current label again, but it is
    # not its author's opinion (undoing a second opinion must not agree with the first).
    UNDO = "undo"


class Project(Base):
    """A labeling project over the images under one root folder."""

    __tablename__ = "project"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    root_path: Mapped[str] = mapped_column(Text)
    multi_label: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class Item(Base):
    """One image file of a project, or one rejected file with its error.

    ``path`` is POSIX-style and relative to the project's root. Rejected files
    have ``status=error``, an ``error`` text and no hash or size in pixels.
    ``size_bytes`` and ``mtime_ns`` let a re-run skip known files unread.
    """

    __tablename__ = "item"
    __table_args__ = (
        UniqueConstraint("project_id", "path"),
        UniqueConstraint("project_id", "sha256"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None]
    height: Mapped[int | None]
    format: Mapped[str | None] = mapped_column(String(8))
    status: Mapped[ItemStatus] = mapped_column(_enum_column(ItemStatus))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class DuplicateFile(Base):
    """A file whose content equals an existing item's; kept so re-runs skip it unread."""

    __tablename__ = "duplicate_file"
    __table_args__ = (UniqueConstraint("project_id", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id"), index=True)
    path: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class LabelClass(Base):
    """A class name of a project; archived classes stay for history."""

    __tablename__ = "label_class"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Role(enum.Enum):
    """What an account may do; each role includes the ones below it (see services/accounts/accounts.py)."""

    ADMIN = "admin"
    REVIEWER = "reviewer"
    ANNOTATOR = "annotator"


class Annotator(Base):
    """A person (or named tool) who labels, and the account they sign in with.

    Rows made by labeling before accounts existed have a name only: no password and no
    email, so nobody signs in as them until an admin sets a password. ``email`` is the
    OIDC identity (lower case); ``password_hash`` is an Argon2id hash.
    """

    __tablename__ = "annotator"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    role: Mapped[Role] = mapped_column(_enum_column(Role), default=Role.ANNOTATOR, server_default=Role.ANNOTATOR.value)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


annotation_class = Table(
    "annotation_class",
    Base.metadata,
    Column("annotation_id", ForeignKey("annotation.id"), primary_key=True),
    Column("label_class_id", ForeignKey("label_class.id"), primary_key=True, index=True),
)


class Annotation(Base):
    """One labeling act, append-only; see the module docstring.

    ``annotator_id`` is empty only for rows no person made (imports, propagation).
    """

    __tablename__ = "annotation"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id"), index=True)
    annotator_id: Mapped[int | None] = mapped_column(ForeignKey("annotator.id"), index=True)
    source: Mapped[AnnotationSource] = mapped_column(_enum_column(AnnotationSource))
    duration_ms: Mapped[int | None]
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("annotation.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)

    classes: Mapped[list[LabelClass]] = relationship(secondary=annotation_class, lazy="selectin")


class ModelVersion(Base):
    """A trained probe; ``artifact_path`` is relative to ``BANANA_HOME``."""

    __tablename__ = "model_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), index=True)
    n_labels: Mapped[int]
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    artifact_path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class SelectionRun(Base):
    """One call of the selection strategy, with the parameters it ran with."""

    __tablename__ = "selection_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), index=True)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_version.id"))
    strategy: Mapped[str] = mapped_column(String(100))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class Pick(Base):
    """An item a selection run chose, its rank, the score parts that explain why, the
    rule that chose it and the probe's prediction at ask time (audit picks measure accuracy)."""

    __tablename__ = "pick"
    __table_args__ = (
        UniqueConstraint("selection_run_id", "rank"),
        UniqueConstraint("selection_run_id", "item_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    selection_run_id: Mapped[int] = mapped_column(ForeignKey("selection_run.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id"), index=True)
    rank: Mapped[int]
    score_parts: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    # The rule that chose the item: the strategy's name, "discovery", "cold_start" or "audit".
    source: Mapped[str] = mapped_column(String(32), default="strategy", server_default="strategy")
    # Label class ids the probe predicted at ask time; None without a probe.
    predicted: Mapped[list[int] | None] = mapped_column(JSON)
    # A queued pick (source "triage") that left the queue unanswered: the queue was cleared, or
    # headless ``select`` handed the image out. None while it waits, and for every other pick.
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


# Models of other concerns live in modules of their own; importing them here puts their
# tables in ``Base.metadata`` for Alembic and the schema test.
from storage.accounts import sign_in_models  # noqa: E402,F401
from storage.settings import setting_models  # noqa: E402,F401
from storage.slices import slice_models  # noqa: E402,F401
from storage.teams import lease_models  # noqa: E402,F401
