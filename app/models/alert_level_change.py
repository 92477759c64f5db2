from datetime import datetime
from uuid import UUID

from sqlalchemy import ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class AlertLevelChange(Base):
    """One change of an institution's alert level (DOMAIN.md: every transition is recorded with
    its reason and who or what caused it). Insert-only; the institution id leads the key, as in
    every per-institution table, so it shards with the institution."""

    __tablename__ = "alert_level_changes"
    __table_args__ = (Index(None, "institution_id", "changed_at"),)

    institution_id: Mapped[UUID] = mapped_column(ForeignKey("institutions.id"), primary_key=True)
    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    from_level: Mapped[str] = mapped_column(String(10))
    to_level: Mapped[str] = mapped_column(String(10))
    cause: Mapped[str] = mapped_column(String(500))
    # Who or what: "regulator:<key id>", "job:evaluate_alerts", "bank:<slug>", "institution:<key id>".
    actor: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
