from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, BigInteger, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class AuditRecord(Base):
    """One regulator or operator action: who (the key's role and id, or a job or bank by name),
    what, about which object, when and from which address. Insert-only (the database refuses
    UPDATE and DELETE) and hash-chained to the previous record of its chain.

    A chain is an institution's (its id leads the key, so the trail is distributed like the
    journal); actions about no institution (a jurisdiction, a key, a bank, a job run) go to the
    platform's chain, `institution_id` all zeros. Money movements are not here: each journal entry
    carries its own actor and address (`ledger_entries`)."""

    __tablename__ = "audit_records"
    __table_args__ = (
        # The regulator's trail by time, and a jurisdiction's by time.
        Index(None, "at"),
        Index(None, "jurisdiction_code", "at"),
    )

    institution_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    jurisdiction_code: Mapped[str | None] = mapped_column(String(32))
    actor_role: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
