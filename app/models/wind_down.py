from datetime import datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import ForeignKey, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class WindDownStatus(StrEnum):
    running = "running"  # enrollments are still being gone through
    completed = "completed"  # every enrollment has been gone through


class WindDown(Base):
    """A regulator's order to wind an institution down (机构退费清算): frozen, and every enrollment's
    unconsumed money refunded to its payer. One per institution: ordering it again resumes it.

    The enrollments are gone through in id order, a batch per transaction; `last_enrollment_id` is
    the last one done, committed with that batch's refunds, so a run that died resumes after it."""

    __tablename__ = "wind_downs"

    institution_id: Mapped[UUID] = mapped_column(ForeignKey("institutions.id"), primary_key=True)
    id: Mapped[UUID] = mapped_column(Uuid, unique=True)
    reason: Mapped[str] = mapped_column(String(500))
    ordered_by: Mapped[str] = mapped_column(String(80))  # the principal's identity
    status: Mapped[str] = mapped_column(String(20), default=WindDownStatus.running)
    last_enrollment_id: Mapped[UUID | None] = mapped_column(Uuid)
    enrollments_covered: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
