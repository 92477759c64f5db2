from datetime import datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class SuspenseReason(StrEnum):
    unknown_order = "unknown_order"
    amount_mismatch = "amount_mismatch"
    already_paid = "already_paid"
    not_awaiting_payment = "not_awaiting_payment"


class SuspenseItem(Base):
    """Money the bank received that matches no order as it stands: held in the ledger's suspense
    account and flagged, never dropped, until someone resolves it."""

    __tablename__ = "suspense_items"
    __table_args__ = (UniqueConstraint("institution_id", "bank_slug", "bank_reference"),)

    institution_id: Mapped[UUID] = mapped_column(ForeignKey("institutions.id"), primary_key=True)
    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    bank_slug: Mapped[str] = mapped_column(String(32))
    bank_reference: Mapped[str] = mapped_column(String(64))
    order_no: Mapped[str | None] = mapped_column(String(32))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(30))
    ledger_seq: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
