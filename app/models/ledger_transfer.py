from datetime import datetime
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class LedgerTransfer(Base):
    """A two-phase transfer (payout or refund in transit): reserved by one entry moving the amount
    from `source` to `transit`, then resolved exactly once, by posting it (transit to `settle`) or
    voiding it (transit back to source). Unlike the journal, its status is updated in place."""

    __tablename__ = "ledger_transfers"
    __table_args__ = (
        UniqueConstraint("institution_id", "reserve_seq"),
        CheckConstraint("amount_fen > 0", name="positive_amount"),
        CheckConstraint("status IN ('pending', 'posted', 'voided')", name="known_status"),
        *(
            ForeignKeyConstraint(
                ["institution_id", column],
                ["ledger_accounts.institution_id", "ledger_accounts.id"],
            )
            for column in ("source_account_id", "transit_account_id", "settle_account_id")
        ),
    )

    institution_id: Mapped[UUID] = mapped_column(
        Uuid, ForeignKey("ledger_heads.institution_id"), primary_key=True
    )
    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    source_account_id: Mapped[UUID] = mapped_column(Uuid)
    transit_account_id: Mapped[UUID] = mapped_column(Uuid)
    settle_account_id: Mapped[UUID] = mapped_column(Uuid)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10))
    reserve_seq: Mapped[int] = mapped_column(BigInteger)
    resolve_seq: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
