from datetime import datetime
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class LedgerEntry(Base):
    """A journal entry: one business event. Append-only; its postings are written before it, in the
        same transaction, and must sum to zero (checked by a trigger when the entry row arrives).

        `content_hash` digests the entry and its postings; `hash` chains it to the previous entry of the
        same institution, so an altered or removed entry breaks the chain at that point. The actor and
    address, when recorded, are part of the chained material too."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("institution_id", "idempotency_key"),
        # Balances as of a past moment select an institution's entries by time.
        Index(None, "institution_id", "posted_at"),
    )

    institution_id: Mapped[UUID] = mapped_column(
        Uuid, ForeignKey("ledger_heads.institution_id"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    memo: Mapped[str | None] = mapped_column(String(500))
    posted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    posting_count: Mapped[int] = mapped_column(SmallInteger)
    content_hash: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # Who caused the movement and from where (the audit trail's money side), covered by `hash`
    # when set; entries posted before the trail have none.
    actor_role: Mapped[str | None] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(64))
