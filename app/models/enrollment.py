from datetime import date, datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class EnrollmentStatus(StrEnum):
    awaiting_payment = "awaiting_payment"
    active = "active"
    completed = "completed"
    refunded = "refunded"
    cancelled = "cancelled"  # expired unpaid


class Enrollment(Base):
    """A student's purchase of `lessons` lessons of a course. The counters are kept with every lesson
    and refund under this row's lock, so caps and "never more lessons than purchased" are checked
    against exact figures; the money itself is in the ledger account `prepaid:<id>`."""

    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("institution_id", "order_no"),
        ForeignKeyConstraint(
            ["institution_id", "course_id"], ["courses.institution_id", "courses.id"]
        ),
        CheckConstraint("lessons > 0", name="positive_lessons"),
        CheckConstraint(
            "lessons_confirmed + lessons_pending + lessons_disputed <= lessons",
            name="lessons_within_purchase",
        ),
        CheckConstraint("valid_until >= valid_from", name="validity_in_order"),
        # The prepay cap sums what one student still has with one course.
        Index(None, "institution_id", "course_id", "student_id_hash"),
        # The expiry job looks for unpaid enrollments past their time.
        Index(None, "status", "expires_at"),
        Index(None, "institution_id", "paid_at"),  # a statement's day of payments
    )

    institution_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True, index=True)
    course_id: Mapped[UUID] = mapped_column(Uuid)
    order_no: Mapped[str] = mapped_column(String(32), index=True)
    student_name: Mapped[str] = mapped_column(String(100))
    # The identity number is kept only as a keyed hash (to match a student across enrollments) and a
    # masked form (to show); never in full.
    student_id_hash: Mapped[str] = mapped_column(String(64))
    student_id_masked: Mapped[str] = mapped_column(String(18))
    payer_name: Mapped[str] = mapped_column(String(100))
    payer_phone: Mapped[str] = mapped_column(String(20))
    lessons: Mapped[int] = mapped_column(Integer)
    lesson_price_fen: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    loan_funded: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default=EnrollmentStatus.awaiting_payment)
    paid_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    lessons_confirmed: Mapped[int] = mapped_column(Integer, default=0)
    lessons_pending: Mapped[int] = mapped_column(Integer, default=0)
    lessons_disputed: Mapped[int] = mapped_column(Integer, default=0)
    confirmed_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    pending_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    disputed_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The days the payment covers (rule 1: at most `max_prepaid_months`), both included: lessons are
    # recorded only within them, and money unconsumed after `valid_until` is the parent's to take
    # back without the institution's consent.
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The bank's references of the payment, quoted by a refund by the original route.
    payment_reference: Mapped[str | None] = mapped_column(String(64))
    payment_channel_order_id: Mapped[str | None] = mapped_column(String(64))
    # Who paid, as the bank's notification says (where it does): where the refund goes.
    payment_payer_name: Mapped[str | None] = mapped_column(String(100))
    payment_payer_account_no: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    @property
    def refund_under_way(self) -> bool:
        return refund_under_way(self.status, self.refunded_fen)


def refund_under_way(status: str, refunded_fen: int) -> bool:
    """An approved refund not yet paid by the bank: the enrollment stays `active` until it is
    (then `refunded`), and a refund that fails gives its amount back to `refunded_fen`, so an
    active enrollment with money refunded has one on its way. A function of the two figures, so
    that an enrollment read as a plain row (app.lessons.types) asks the same question."""
    return status == EnrollmentStatus.active and refunded_fen > 0
