from datetime import datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import CheckConstraint, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class Role(StrEnum):
    admin = "admin"
    regulator = "regulator"  # one jurisdiction
    institution = "institution"  # one institution
    parent = "parent"  # one enrollment
    bank = "bank"  # one bank


class ApiKey(Base):
    """An API key, stored as a keyed hash (HMAC-SHA256 with the server's secret): the key itself is
    shown once, when issued. Its scope columns say what it may see; everything else is 404 to it."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(
            "role IN ('admin', 'regulator', 'institution', 'parent', 'bank')", name="known_role"
        ),
    )

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))  # shown in listings, never enough to use
    jurisdiction_code: Mapped[str | None] = mapped_column(String(32))
    institution_id: Mapped[UUID | None] = mapped_column(Uuid)
    enrollment_id: Mapped[UUID | None] = mapped_column(Uuid)
    bank_slug: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
