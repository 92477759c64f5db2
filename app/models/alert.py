from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class AlertKind(StrEnum):
    suspense = "suspense"  # money arrived that matches no order as it stands
    returned_payment = "returned_payment"  # 退票: a settled payout or refund came back
    instruction_failed = "instruction_failed"  # the bank refused or failed an instruction
    unknown_instruction = "unknown_instruction"  # a bank result for an instruction we never sent
    conflicting_result = "conflicting_result"  # a bank result contradicting an earlier final one
    # A bank spoke for an account or an instruction of another bank: refused, a security event.
    foreign_bank_message = "foreign_bank_message"
    unauthorized_debit = (
        "unauthorized_debit"  # money left the escrow account without an instruction
    )
    reconciliation_break = "reconciliation_break"  # a break still open a day after it opened
    # The alert engine's triggers (DOMAIN.md, alert levels).
    floor_breach = "floor_breach"  # U <= B < R
    shortfall = "shortfall"  # B < U
    large_outflow = "large_outflow"  # one outflow above large_outflow_fen
    daily_outflow = "daily_outflow"  # a day's outflows above daily_outflow_pct of the opening
    consumption_spike = "consumption_spike"  # 突击消课
    topup_overdue = "topup_overdue"  # YELLOW not cured within topup_deadline_workdays
    complaint_burst = "complaint_burst"  # many complaints about one institution


class Alert(Base):
    """Something the regulator should see about an institution, with the level it warrants. Raising
    the same alert again (same `key`) changes nothing."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("institution_id", "key"),
        Index(None, "closed_at", "opened_at"),
    )

    institution_id: Mapped[UUID] = mapped_column(ForeignKey("institutions.id"), primary_key=True)
    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True, index=True)
    key: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(30))
    level: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(String(500))
    # The bank's message the alert is about, kept raw in the inbox.
    bank_message_id: Mapped[UUID | None] = mapped_column(ForeignKey("bank_messages.id"))
    # The numbers that opened it (fen, counts, the day), for API consumers; None for alerts raised
    # before the engine kept them, and for those with nothing to count.
    figures: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
