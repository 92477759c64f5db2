from datetime import date, datetime
from uuid import UUID

from sqlalchemy import BigInteger, Date, ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class LedgerCheckpoint(Base):
    """An institution's journal head as it stood on a day, published once per institution and day by
    the `checkpoint_ledgers` job. Append-only (the database refuses UPDATE and DELETE), so a journal
    whose tail was removed and whose head was rolled back still disagrees with an earlier checkpoint;
    regulators export these rows to hold a copy of the heads outside the service."""

    __tablename__ = "ledger_checkpoints"

    # The institution leads the key: the table is distributed by institution, like the journal.
    institution_id: Mapped[UUID] = mapped_column(
        Uuid, ForeignKey("ledger_heads.institution_id"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)  # Asia/Shanghai
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    taken_at: Mapped[datetime] = mapped_column(UtcDateTime)
