from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class OpeningImport(Base):
    """One file of opening balances (存量: money collected before onboarding, still unconsumed)
    imported for an institution: its enrollments and their `opening_balance` journal entries were
    written with it, in one transaction. The file's SHA-256 is unique per institution, so the same
    file imported again changes nothing."""

    __tablename__ = "opening_imports"
    __table_args__ = (UniqueConstraint("institution_id", "file_sha256"),)

    institution_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    file_sha256: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(255))
    rows: Mapped[int] = mapped_column(Integer)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    # The escrow account's first statement the total was checked against, and its opening balance.
    statement_run_id: Mapped[UUID] = mapped_column(Uuid)
    statement_opening_fen: Mapped[int] = mapped_column(BigInteger)
    imported_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
