from datetime import datetime
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    SmallInteger,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class LedgerAccount(Base):
    """An account of one institution. `balance_fen` is the raw signed sum of its postings (debits
    positive), so the balances of an institution sum to zero; `normal` (+1 debit, -1 credit) turns it
    into the balance as the account's kind reads it, and `lower_limit_fen` bounds that. Only the
    balance and `last_seq` ever change, and only together with the journal (migration 0008)."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("institution_id", "code"),
        CheckConstraint("normal IN (1, -1)", name="normal_side"),
        CheckConstraint(
            "lower_limit_fen IS NULL OR balance_fen * normal >= lower_limit_fen",
            name="within_lower_limit",
        ),
    )

    institution_id: Mapped[UUID] = mapped_column(
        Uuid, ForeignKey("ledger_heads.institution_id"), primary_key=True
    )
    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    # Unique per institution: the kind, plus the enrollment or other object it belongs to.
    code: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(40))
    normal: Mapped[int] = mapped_column(SmallInteger)
    lower_limit_fen: Mapped[int | None] = mapped_column(BigInteger)
    balance_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    # The last entry that posted to this account. The database lets `balance_fen` change only by the
    # postings of the entries after this one, so a balance cannot be edited apart from its journal.
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
