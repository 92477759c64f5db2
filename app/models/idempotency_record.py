from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class IdempotencyRecord(Base):
    """The response of a request that ran with an Idempotency-Key, kept for replay until
    `expires_at`. Written in the request's own transaction, so it exists exactly when the request's
    outcome is final. The primary key (caller, key) lets exactly one of two concurrent requests with
    the same key commit."""

    __tablename__ = "idempotency_records"

    caller: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # sha256 hex of the method, path and body, to tell a repeat from a reuse of the key.
    request_hash: Mapped[str] = mapped_column(String(64))
    # Status, replayed headers and body, sealed under SECRET_KEY (app.kit.sealing).
    response: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
