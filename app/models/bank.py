from datetime import datetime

from sqlalchemy import Integer, String, Text
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
    # Reconciliation: how long after a movement the bank may book it (a movement that young at a
    # statement's cut-off is carried to the next statement instead of missing at the bank), which
    # days it owes a statement ("daily", or "workdays" as the State Council's calendar has them),
    # and how many hours after the day ends a statement not received is missing.
    statement_grace_minutes: Mapped[int] = mapped_column(Integer, default=120)
    statement_days: Mapped[str] = mapped_column(String(10), default="daily")
    statement_due_hours: Mapped[int] = mapped_column(Integer, default=12)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
