"""Remembered browser sign-ins: a browser that signed in with a password stays signed in
across reloads for a while.

The browser keeps a random token in a cookie; the database keeps only its SHA-256, so a
copy of the database signs nobody in. A row stops working when it expires, when it is
revoked (sign-out, a password change) or when its account is disabled.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base
from storage.types import UtcDateTime, utc_now


class RememberedSignIn(Base):
    """One browser's sign-in, found by the SHA-256 (hex) of the token in its cookie."""

    __tablename__ = "remembered_sign_in"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotator.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
