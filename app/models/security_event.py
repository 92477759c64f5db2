from datetime import datetime
from uuid import UUID

from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class SecurityEvent(Base):
    """A message that claimed to come from a bank and failed its signature check (bad, missing,
    expired or replayed), or that a bank signed for an account or an instruction of another bank
    (`foreign_account`, `foreign_instruction`). Nothing in it was acted on; the raw message is in
    the inbox."""

    __tablename__ = "security_events"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    bank_slug: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    detail: Mapped[str] = mapped_column(String(500))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    bank_message_id: Mapped[UUID] = mapped_column(ForeignKey("bank_messages.id"))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
