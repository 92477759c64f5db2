from datetime import date, datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class PayoutStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    settled = "settled"
    failed = "failed"
    returned = "returned"


class Payout(Base):
    """Released money (拨付) to the institution's basic account, on request or by the T+1 job."""

    __tablename__ = "payouts"
    __table_args__ = (CheckConstraint("amount_fen > 0", name="positive_amount"),)

    institution_id: Mapped[UUID] = mapped_column(ForeignKey("institutions.id"), primary_key=True)
    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True, index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default=PayoutStatus.pending)
    trigger: Mapped[str] = mapped_column(String(20))  # "request" or "release_job"
    business_date: Mapped[date] = mapped_column(Date)
    transfer_id: Mapped[UUID] = mapped_column(Uuid)
    instruction_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
