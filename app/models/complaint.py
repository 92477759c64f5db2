from datetime import datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import ForeignKeyConstraint, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class ComplaintCategory(StrEnum):
    lesson = "lesson"
    refund = "refund"
    closure = "closure"  # the institution closed or disappeared (跑路)
    other = "other"


class ComplaintStatus(StrEnum):
    open = "open"
    resolved = "resolved"


class ComplaintOutcome(StrEnum):
    upheld = "upheld"
    rejected = "rejected"


class Complaint(Base):
    """A parent's complaint (投诉举报) about an enrollment, resolved by the regulator."""

    __tablename__ = "complaints"
    __table_args__ = (
        ForeignKeyConstraint(
            ["institution_id", "enrollment_id"], ["enrollments.institution_id", "enrollments.id"]
        ),
        # The burst rule counts an institution's open complaints of the last days.
        Index(None, "institution_id", "status", "created_at"),
        Index(None, "created_at", "id"),  # the regulator's list, oldest first
    )

    institution_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True, index=True)
    enrollment_id: Mapped[UUID] = mapped_column(Uuid)
    lesson_id: Mapped[UUID | None] = mapped_column(Uuid)
    category: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    # Whether filing it put the lesson in dispute (a lesson no longer pending stays as it was).
    lesson_disputed: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(20), default=ComplaintStatus.open)
    outcome: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(String(500))
    resolved_by: Mapped[str | None] = mapped_column(String(80))
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
