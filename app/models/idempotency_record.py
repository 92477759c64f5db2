from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, CheckConstraint, LargeBinary, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class IdempotencyStatus(StrEnum):
    in_progress = "in_progress"
    completed = "completed"


class IdempotencyRecord(Base):
    """An Idempotency-Key claimed by a caller: in progress while the first request with it runs,
    then completed with the response to replay. The primary key (caller, key) is what makes a claim
    atomic: of two requests inserting the same pair, the database lets exactly one through."""

    __tablename__ = "idempotency_records"
    __table_args__ = (
        CheckConstraint("status IN ('in_progress', 'completed')", name="known_status"),
    )

    caller: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # sha256 hex of the method, path and body, to tell a repeat from a reuse of the key.
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    response_status: Mapped[int | None] = mapped_column(SmallInteger)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSON)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
