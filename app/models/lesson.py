from datetime import date, datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class LessonStatus(StrEnum):
    pending_confirmation = "pending_confirmation"
    confirmed = "confirmed"
    auto_confirmed = "auto_confirmed"
    disputed = "disputed"
    resolved_for_institution = "resolved_for_institution"  # released like a confirmed lesson
    resolved_for_parent = "resolved_for_parent"  # voided: back to the refundable balance


class Lesson(Base):
    """Delivered lessons (消课) recorded by the institution under its own `lesson_key`. `first_no` is
    the number of the first of the `count` lessons within the enrollment, which fixes their price
    by the remainder rule whatever order they are confirmed in."""

    __tablename__ = "lessons"
    __table_args__ = (
        UniqueConstraint("institution_id", "lesson_key"),
        ForeignKeyConstraint(
            ["institution_id", "enrollment_id"], ["enrollments.institution_id", "enrollments.id"]
        ),
        CheckConstraint("count > 0", name="positive_count"),
        # The auto-confirm job looks for pending lessons that are due.
        Index(None, "status", "confirm_due_on"),
        Index(None, "institution_id", "enrollment_id"),
    )

    institution_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True, index=True)
    enrollment_id: Mapped[UUID] = mapped_column(Uuid)
    lesson_key: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    count: Mapped[int] = mapped_column(Integer)
    first_no: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(30), default=LessonStatus.pending_confirmation)
    confirm_due_on: Mapped[date] = mapped_column(Date)
    dispute_reason: Mapped[str | None] = mapped_column(String(500))
    # Who moved the lesson out of pending or disputed: "parent", "auto" (the parent's silence),
    # "regulator" or "institution" (a resolution), with the resolver's note.
    decided_by: Mapped[str | None] = mapped_column(String(20))
    resolution_note: Mapped[str | None] = mapped_column(String(500))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Entry that moved the lesson's money from prepaid to releasable, once it was.
    release_seq: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
