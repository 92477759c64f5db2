from datetime import date, datetime
from uuid import UUID

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class Course(Base):
    """A course an institution sells, at one price per lesson: a bigger package is the same price
    times more lessons, so a tiered discount (rule 3 of DOMAIN.md) cannot be expressed."""

    __tablename__ = "courses"
    __table_args__ = (
        CheckConstraint("lesson_price_fen > 0", name="positive_price"),
        CheckConstraint("ends_on >= starts_on", name="ends_after_start"),
    )

    institution_id: Mapped[UUID] = mapped_column(ForeignKey("institutions.id"), primary_key=True)
    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True, index=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(20))
    lesson_price_fen: Mapped[int] = mapped_column(BigInteger)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
