from datetime import datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import JSON, Index, Integer, LargeBinary, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class MessageStatus(StrEnum):
    received = "received"  # a statement file, verified and stored, not yet reconciled
    # Verified, read and stored, its events not yet applied: the bank has its success reply, and
    # the inbox worker credits it within moments (app/banks/crediting.py).
    stored = "stored"
    processed = "processed"  # verified, read, and its events applied
    failed = "failed"  # verified and read, but applying it failed; the process_inbox job retries
    malformed = "malformed"  # verified but unreadable: kept raw, nothing else recorded
    rejected = "rejected"  # failed its signature check: kept raw with a security event
    # Verified and read, but it speaks for an account or instruction of another bank: kept raw with
    # a security event and an alert, nothing applied.
    refused = "refused"


class BankMessage(Base):
    """The inbox: every message a bank sent us, raw, with the result of its verification. A verified
    message is unique per (bank, message id), so a resend (same id) is recognised and changes
    nothing; rejected and malformed ones have no trusted id and are kept only as evidence."""

    __tablename__ = "bank_messages"
    __table_args__ = (
        UniqueConstraint("bank_slug", "message_id"),
        Index(None, "status", "received_at"),
        Index(None, "bank_slug", "received_at", "id"),  # a bank's messages, in order, for operators
    )

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    bank_slug: Mapped[str] = mapped_column(String(32))
    endpoint: Mapped[str] = mapped_column(String(20))  # notify or statements
    message_id: Mapped[str | None] = mapped_column(String(128))
    verification: Mapped[str] = mapped_column(String(30))  # "ok" or a SignatureProblem
    status: Mapped[str] = mapped_column(String(20))
    content_type: Mapped[str] = mapped_column(String(200))
    # The headers that carry the bank's signature, as received.
    signature_headers: Mapped[dict[str, str]] = mapped_column(JSON)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    events: Mapped[int] = mapped_column(Integer, default=0)
    # The one escrow account a stored payment message names: how the crediting worker groups
    # messages by institution (one transaction each) without reading their bodies.
    account_no: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
