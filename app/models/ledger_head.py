from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class LedgerHead(Base):
    """One row per institution: the tip of its journal's hash chain. Locking it serialises that
    institution's ledger writes, and nothing else's."""

    __tablename__ = "ledger_heads"

    institution_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
