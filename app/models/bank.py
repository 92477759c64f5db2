from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class Bank(Base):
    """A custodian bank as the operator configured it: which adapter speaks its interface, where to
    send instructions, and its keys. The configuration is stored sealed (encrypted under a key
    derived from SECRET_KEY) because it holds secrets, and is never returned."""

    __tablename__ = "banks"

    slug: Mapped[str] = mapped_column(String(32), primary_key=True)
    adapter: Mapped[str] = mapped_column(String(20))
    base_url: Mapped[str] = mapped_column(String(500))
    sealed_config: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
