from datetime import date, datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKeyConstraint,
    Index,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class RefundStatus(StrEnum):
    requested = "requested"
    approved = "approved"
    rejected = "rejected"
    sent = "sent"
    settled = "settled"
    failed = "failed"
    returned = "returned"  # 退票: paid back, and the money came back to the escrow account


class Refund(Base):
    """A parent's refund request (退费), paid back by the original route once approved, or once the
    institution has let `institution_refund_response_workdays` working days pass."""

    __tablename__ = "refunds"
    __table_args__ = (
        ForeignKeyConstraint(
            ["institution_id", "enrollment_id"], ["enrollments.institution_id", "enrollments.id"]
        ),
        Index(None, "status", "respond_by"),
        # A wind-down refunds an enrollment once, however often it is ordered or resumed.
        UniqueConstraint("wind_down_id", "enrollment_id"),
    )

    institution_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True, index=True)
    enrollment_id: Mapped[UUID] = mapped_column(Uuid)
    reason: Mapped[str] = mapped_column(String(500))
    # What was refundable when asked; the amount paid is fixed again at approval.
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default=RefundStatus.requested)
    respond_by: Mapped[date] = mapped_column(Date)
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    decided_by: Mapped[str | None] = mapped_column(String(20))  # institution or auto
    transfer_id: Mapped[UUID | None] = mapped_column(Uuid)
    instruction_id: Mapped[str | None] = mapped_column(String(32))
    # The wind-down that ordered or took over this refund (app.winddown), if any.
    wind_down_id: Mapped[UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
