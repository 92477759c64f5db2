from datetime import date, datetime
from typing import Annotated, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from app.enrollments.rules import refundable_fen
from app.kit.clock import as_utc
from app.kit.text import Name as TextName
from app.models import Enrollment
from app.models.enrollment import EnrollmentStatus

Name = Annotated[TextName, StringConstraints(max_length=100)]
# More than any package could hold under a cap; keeps lessons times price within a BIGINT.
MAX_LESSONS = 10_000


class StudentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    id_number: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] = Field(
        description="The 18-character resident identity number, check character verified. Stored "
        "only as a keyed hash and a masked form; never returned or logged."
    )


class PayerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 -]{4,18}$")]


class EnrollmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    course_id: UUID
    student: StudentIn
    payer: PayerIn
    lessons: Annotated[int, Field(strict=True, gt=0, le=MAX_LESSONS)]
    loan_funded: Annotated[bool, Field(strict=True)] = Field(
        default=False,
        description="Whether a loan pays for it (培训贷). A loan-funded payment is refused.",
    )
    valid_from: date | None = Field(
        default=None,
        description="The first day the payment covers: not before today nor the course's start. "
        "Default: the later of today and the course's start.",
    )
    valid_until: date | None = Field(
        default=None,
        description="The last day the payment covers: within the course, at most "
        "`max_prepaid_months` after `valid_from` (else `422 prepay_cap_exceeded`). Default: the "
        "course's end, or `max_prepaid_months` after `valid_from` if that comes first.",
    )

    @model_validator(mode="after")
    def valid_in_order(self) -> Self:
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            raise ValueError("valid_until must be on or after valid_from")
        return self


class StudentOut(BaseModel):
    name: str
    id_number_masked: str = Field(description="First 3 and last 4 characters; the rest `*`.")


class PayerOut(BaseModel):
    name: str
    phone: str


class EnrollmentOut(BaseModel):
    id: UUID
    institution_id: UUID
    course_id: UUID
    order_no: str = Field(description="The order number the payer's bank transfer quotes.")
    status: EnrollmentStatus
    lessons: int
    lesson_price_fen: int
    lessons_consumed: int = Field(
        description="Lessons released: confirmed by the parent, "
        "auto-confirmed, or resolved for the institution."
    )
    lessons_pending: int = Field(description="Recorded, awaiting the parent.")
    lessons_disputed: int
    amount_fen: int
    paid_fen: int
    unconsumed_fen: int = Field(description="Paid, less released lessons, less refunded.")
    refundable_fen: int = Field(
        description="Paid, less lessons confirmed, pending or disputed, less refunded; never "
        "below 0."
    )
    refunded_fen: int = Field(
        description="Reserved for or paid back by approved refunds. The status stays `active` "
        "while a refund is on its way to the payer, and turns `refunded` once the bank has paid it."
    )
    refund_under_way: bool = Field(
        description="An approved refund is on its way to the payer (the status is still "
        "`active`); no lesson may be recorded meanwhile."
    )
    valid_from: date = Field(description="The first day the payment covers.")
    valid_until: date = Field(
        description="The last day the payment covers: lessons are recorded only from `valid_from` "
        "to this day, and a refund asked for after it is approved at once, without the "
        "institution."
    )
    student: StudentOut
    payer: PayerOut
    expires_at: datetime | None = Field(
        description="The payment deadline: unpaid by then, the enrollment is cancelled. Only while "
        "`awaiting_payment`; null once paid or cancelled."
    )
    paid_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, enrollment: Enrollment) -> "EnrollmentOut":
        return cls(
            id=enrollment.id,
            institution_id=enrollment.institution_id,
            course_id=enrollment.course_id,
            order_no=enrollment.order_no,
            status=EnrollmentStatus(enrollment.status),
            lessons=enrollment.lessons,
            lesson_price_fen=enrollment.lesson_price_fen,
            lessons_consumed=enrollment.lessons_confirmed,
            lessons_pending=enrollment.lessons_pending,
            lessons_disputed=enrollment.lessons_disputed,
            amount_fen=enrollment.amount_fen,
            paid_fen=enrollment.paid_fen,
            unconsumed_fen=enrollment.paid_fen - enrollment.confirmed_fen - enrollment.refunded_fen,
            refundable_fen=refundable_fen(enrollment),
            refunded_fen=enrollment.refunded_fen,
            refund_under_way=enrollment.refund_under_way,
            valid_from=enrollment.valid_from,
            valid_until=enrollment.valid_until,
            student=StudentOut(
                name=enrollment.student_name, id_number_masked=enrollment.student_id_masked
            ),
            payer=PayerOut(name=enrollment.payer_name, phone=enrollment.payer_phone),
            # SQLite gives back naive UTC; the API's times always carry their offset.
            expires_at=as_utc(enrollment.expires_at)
            if enrollment.status == EnrollmentStatus.awaiting_payment
            else None,
            paid_at=None if enrollment.paid_at is None else as_utc(enrollment.paid_at),
            created_at=as_utc(enrollment.created_at),
        )


class EnrollmentCreated(EnrollmentOut):
    parent_key: str = Field(
        description="The parent's API key for this enrollment. Shown once: pass it on to the payer."
    )


class EnrollmentPage(BaseModel):
    items: list[EnrollmentOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )
