"""Enrollments: a student buys lessons of a course; the payer pays the order into the escrow account.

An enrollment is checked against the prepay cap and the renewal window under the course's row lock,
taken first, so two enrollments of one student in one course are decided one after the other and
cannot both fit under the cap. The enrollment, its prepaid ledger account and the parent's key are
made in one transaction.
"""

import secrets
import string
import uuid
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.service import issue_key
from app.balances.service import profile_of
from app.courses.service import locked_course
from app.enrollments import repository
from app.enrollments.errors import (
    CourseEnded,
    InstitutionFrozen,
    LoanFundedPayment,
)
from app.enrollments.identity import student_id
from app.enrollments.rules import check_prepay_cap, check_renewal_window, paid_span
from app.enrollments.schemas import EnrollmentCreate
from app.institutions.standing import ENROLLMENT_STOPPING_LEVELS, stopped_because
from app.kit.clock import utcnow
from app.kit.workdays import local_date
from app.ledger.books import enrollment_account
from app.models import Enrollment, Institution
from app.models.api_key import Role
from app.models.enrollment import EnrollmentStatus

ORDER_NO_ALPHABET = string.ascii_letters + string.digits
EXPIRY_BATCH = 500
# DOMAIN.md: RED stops new enrollments; FROZEN is as RED and hidden from enrollment.


def new_order_no() -> str:
    """ "PG" and 30 random letters and digits: 32 characters a bank transfer can quote, unguessable
    (178 bits), so colliding with another order is not a practical concern."""
    return "PG" + "".join(secrets.choice(ORDER_NO_ALPHABET) for _ in range(30))


async def create_enrollment(
    session: AsyncSession, secret: str, institution_id: UUID, body: EnrollmentCreate, now: datetime
) -> tuple[Enrollment, str]:
    """The new enrollment, awaiting payment, and its parent's key (shown once)."""
    # Read under a share lock: a freeze (which locks the row to change it) waits for the enrollments
    # already deciding, and those that come after it see it. Enrollments do not wait on each other.
    institution = await session.get_one(Institution, institution_id, with_for_update={"read": True})
    if reason := stopped_because(institution, ENROLLMENT_STOPPING_LEVELS):
        raise InstitutionFrozen(f"no new enrollments: {reason}")
    if body.loan_funded:
        raise LoanFundedPayment("a payment funded by a training loan (培训贷) is not accepted")
    student = student_id(secret, body.student.id_number)
    course = await locked_course(session, institution_id, body.course_id)
    today = local_date(now)
    if course.ends_on < today:
        raise CourseEnded(f"the course ended on {course.ends_on}")
    profile = await profile_of(session, institution)
    open_enrollments = await repository.locked_open_enrollments(
        session, institution_id, course.id, student.hash
    )
    check_renewal_window(profile, open_enrollments)
    amount_fen = course.lesson_price_fen * body.lessons
    span = paid_span(profile, course, today, body.valid_from, body.valid_until)
    check_prepay_cap(profile, open_enrollments, span, body.lessons, amount_fen)

    enrollment = Enrollment(
        institution_id=institution_id,
        id=uuid.uuid4(),
        course_id=course.id,
        order_no=new_order_no(),
        student_name=body.student.name,
        student_id_hash=student.hash,
        student_id_masked=student.masked,
        payer_name=body.payer.name,
        payer_phone=body.payer.phone,
        lessons=body.lessons,
        lesson_price_fen=course.lesson_price_fen,
        amount_fen=amount_fen,
        loan_funded=False,
        status=EnrollmentStatus.awaiting_payment,
        paid_fen=0,
        lessons_confirmed=0,
        lessons_pending=0,
        lessons_disputed=0,
        confirmed_fen=0,
        pending_fen=0,
        disputed_fen=0,
        refunded_fen=0,
        expires_at=now + timedelta(minutes=profile.unpaid_enrollment_expiry_minutes),
        valid_from=span.valid_from,
        valid_until=span.valid_until,
        created_at=now,
        updated_at=now,
    )
    session.add(enrollment)
    await session.flush()
    await enrollment_account(await session.connection(), institution_id, enrollment.id)
    _, parent_key = await issue_key(
        session,
        secret,
        role=Role.parent,
        name=f"parent of {enrollment.order_no}",
        enrollment_id=enrollment.id,
    )
    return enrollment, parent_key


async def expire_unpaid_enrollments(session: AsyncSession, as_of: datetime) -> int:
    """Cancel one batch of enrollments still unpaid at their `expires_at`; returns how many. Run it
    until it returns 0. A payment arriving later goes to suspense (see app.payments)."""
    expired = await repository.claim_expired(session, as_of, EXPIRY_BATCH)
    now = utcnow()
    for enrollment in expired:
        enrollment.status = EnrollmentStatus.cancelled
        enrollment.updated_at = now
    await session.flush()
    return len(expired)
