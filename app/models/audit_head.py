from uuid import UUID

from sqlalchemy import BigInteger, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class AuditHead(Base):
    """The tip of one audit chain. Locking it serialises that chain's records, and nothing else's:
    an institution's actions never wait on another's."""

    __tablename__ = "audit_heads"

    institution_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
