from datetime import date, datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class RunStatus(StrEnum):
    clean = "clean"  # every line matched, the balances agree
    breaks = "breaks"  # at least one break was opened
    # No statement came for a day the bank owes one: the run holds the statement_missing break.
    missing = "missing"
    # A corrected statement of the same account and day came after it and stands instead.
    superseded = "superseded"


class ReconciliationRun(Base):
    """One bank statement of one escrow account for one day, read and reconciled against the
    ledger. The raw file is in `bank_messages` (endpoint `statements`); a statement sent again is
    the same message, so it makes no second run."""

    __tablename__ = "reconciliation_runs"
    __table_args__ = (
        # The institution leads every key: the table is distributed by institution, like the ledger.
        Index(None, "institution_id", "statement_date", "id"),
        Index(None, "statement_date", "id"),  # a regulator's list across institutions
    )

    institution_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    bank_slug: Mapped[str] = mapped_column(String(32))
    # The statement read; None for a day whose statement is missing.
    bank_message_id: Mapped[UUID | None] = mapped_column(
        ForeignKey("bank_messages.id"), unique=True
    )
    account_no: Mapped[str] = mapped_column(String(40))
    statement_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))
    lines: Mapped[int] = mapped_column(Integer)
    opening_fen: Mapped[int] = mapped_column(BigInteger)
    closing_fen: Mapped[int] = mapped_column(BigInteger)
    credits_fen: Mapped[int] = mapped_column(BigInteger)
    debits_fen: Mapped[int] = mapped_column(BigInteger)
    # The ledger's escrow balance at the statement's cut-off (the end of its day, Asia/Shanghai).
    ledger_balance_fen: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class BreakType(StrEnum):
    missing_in_ledger = "missing_in_ledger"
    missing_at_bank = "missing_at_bank"
    amount_mismatch = "amount_mismatch"
    duplicate = "duplicate"
    returned = "returned"
    balance_mismatch = "balance_mismatch"
    unauthorized_debit = "unauthorized_debit"
    statement_missing = "statement_missing"


class BreakStatus(StrEnum):
    open = "open"
    closed = "closed"


class ReconciliationBreak(Base):
    """A difference between a bank statement and the ledger, typed (API.md), open until a later
    notification, statement or correction closes it by itself, or an operator or regulator closes
    it with a note. Who or what opened and closed it is recorded."""

    __tablename__ = "reconciliation_breaks"
    __table_args__ = (
        Index(None, "institution_id", "run_id"),
        Index(None, "status", "opened_at"),  # open breaks by age, for the alerts
        Index(None, "opened_at", "id"),  # a regulator's list across institutions
    )

    institution_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    # Indexed alone too: a regulator closes a break by its id.
    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True, index=True)
    run_id: Mapped[UUID] = mapped_column(Uuid)
    type: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(10))
    line_number: Mapped[int | None] = mapped_column(Integer)  # the statement's line, when one
    bank_reference: Mapped[str | None] = mapped_column(String(64))
    movement_id: Mapped[str | None] = mapped_column(String(64))  # the ledger's side, when one
    amount_fen: Mapped[int | None] = mapped_column(BigInteger)  # what the bank says
    expected_fen: Mapped[int | None] = mapped_column(BigInteger)  # what the ledger says
    detail: Mapped[str] = mapped_column(String(500))
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    opened_by: Mapped[str] = mapped_column(String(100))
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(100))
    close_note: Mapped[str | None] = mapped_column(String(500))


class PendingMovement(Base):
    """A ledger movement of the escrow account recorded too near a statement's cut-off for the
    bank to have booked it that day (within the bank's grace period): carried to the next
    statements until one lists it (`listed_run_id`), or a later one does not and it is missing at
    the bank. Kept whole, so the next run needs no second reading of where it came from."""

    __tablename__ = "reconciliation_pending"
    __table_args__ = (Index(None, "institution_id", "listed_run_id", "at"),)

    institution_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    movement_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[UUID] = mapped_column(Uuid)  # the run that found it too young
    kind: Mapped[str] = mapped_column(String(10))
    direction: Mapped[str] = mapped_column(String(10))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    bank_reference: Mapped[str | None] = mapped_column(String(64))
    reference: Mapped[str | None] = mapped_column(String(64))
    # The run whose statement listed it, or that reported it missing at the bank.
    listed_run_id: Mapped[UUID | None] = mapped_column(Uuid)
