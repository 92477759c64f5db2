from datetime import datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class InstructionKind(StrEnum):
    payout = "payout"
    refund = "refund"


class InstructionStatus(StrEnum):
    pending = "pending"  # written with its ledger reservation, not yet sent
    sent = "sent"
    succeeded = "succeeded"
    failed = "failed"
    returned = "returned"  # 退票 after success


class Instruction(Base):
    """The outbox: a payment instruction for the bank, written in the same transaction as the
    two-phase ledger transfer that reserves its money, and sent by the dispatch job."""

    __tablename__ = "instructions"
    __table_args__ = (
        Index(None, "status", "next_attempt_at"),
        Index(None, "institution_id", "sent_at"),  # a statement's day of instructions
    )

    institution_id: Mapped[UUID] = mapped_column(ForeignKey("institutions.id"), primary_key=True)
    # The bank's reference: at most 32 characters of [A-Za-z0-9].
    id: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    kind: Mapped[str] = mapped_column(String(10))
    transfer_id: Mapped[UUID] = mapped_column(Uuid)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    # None for a refund of a payment that named no payer account: the bank routes it by the
    # payment's reference.
    payee_account_no: Mapped[str | None] = mapped_column(String(40))
    payee_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=InstructionStatus.pending)
    bank_slug: Mapped[str] = mapped_column(String(32))
    memo: Mapped[str] = mapped_column(String(140))
    # A refund goes back by the original route: the payment's order and the bank's references of it.
    order_no: Mapped[str | None] = mapped_column(String(32))
    payment_reference: Mapped[str | None] = mapped_column(String(64))
    payment_channel_order_id: Mapped[str | None] = mapped_column(String(64))
    # Submissions so far. Once it is above zero the bank may have the instruction, so the dispatch
    # job asks the bank before it sends it again.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the dispatch or poll job may next look at it (a lease while a job holds it, a backoff
    # after a failure).
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    bank_code: Mapped[str | None] = mapped_column(String(40))  # the bank's last answer, for people
    detail: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ResultStatus(StrEnum):
    """What a bank says became of an instruction (each adapter maps its own codes to these)."""

    pending = "pending"  # still processing, or a status we do not know
    settled = "settled"  # the money left the escrow account
    failed = "failed"  # the bank refused or could not pay; the money never left
    returned = "returned"  # 退票: it left, and came back
