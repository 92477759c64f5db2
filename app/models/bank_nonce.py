from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class BankNonce(Base):
    """Nonces of signed bank messages seen recently (gmbank). Kept in the database, not in memory, so
    that a replay is refused across restarts and across processes."""

    __tablename__ = "bank_nonces"

    bank_slug: Mapped[str] = mapped_column(String(32), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
