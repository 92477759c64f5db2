"""The enrollment queries that take locks or pages."""

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.enrollments.errors import InvalidCursor
from app.enrollments.rules import OPEN_STATUSES
from app.kit.clock import as_utc
from app.models import Enrollment
from app.models.enrollment import EnrollmentStatus


async def locked_open_enrollments(
    session: AsyncSession, institution_id: UUID, course_id: UUID, student_id_hash: str
) -> Sequence[Enrollment]:
    """The student's open enrollments in the course, locked: the figures of the prepay cap."""
    return (
        await session.scalars(
            select(Enrollment)
            .where(
                Enrollment.institution_id == institution_id,
                Enrollment.course_id == course_id,
                Enrollment.student_id_hash == student_id_hash,
                Enrollment.status.in_(OPEN_STATUSES),
            )
            .order_by(Enrollment.created_at, Enrollment.id)
            .with_for_update()
        )
    ).all()


async def locked_by_order_no(
    session: AsyncSession, institution_id: UUID, order_no: str
) -> Enrollment | None:
    return await session.scalar(
        select(Enrollment)
        .where(Enrollment.institution_id == institution_id, Enrollment.order_no == order_no)
        .with_for_update()
    )


async def claim_expired(session: AsyncSession, as_of: datetime, limit: int) -> Sequence[Enrollment]:
    """Unpaid enrollments past their time, locked; rows another transaction holds are skipped (on
    PostgreSQL), so two runs share the work and a payment being credited is never waited for."""
    return (
        await session.scalars(
            select(Enrollment)
            .where(
                Enrollment.status == EnrollmentStatus.awaiting_payment,
                Enrollment.expires_at <= as_of,
            )
            .order_by(Enrollment.expires_at, Enrollment.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()


def encode_cursor(enrollment: Enrollment) -> str:
    position = [as_utc(enrollment.created_at).isoformat(), str(enrollment.id)]
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        created_at, enrollment_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return as_utc(datetime.fromisoformat(created_at)), UUID(enrollment_id)
    except (binascii.Error, ValueError, TypeError, AttributeError):
        raise InvalidCursor("the cursor is not one this list gave out") from None


async def page(
    session: AsyncSession,
    institution_id: UUID,
    status: EnrollmentStatus | None,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[Enrollment], str | None]:
    """One page of the institution's enrollments, oldest first, and the cursor of the next page."""
    query = select(Enrollment).where(Enrollment.institution_id == institution_id)
    if status is not None:
        query = query.where(Enrollment.status == status)
    if cursor is not None:
        created_at, enrollment_id = _decode_cursor(cursor)
        query = query.where(
            or_(
                Enrollment.created_at > created_at,
                and_(Enrollment.created_at == created_at, Enrollment.id > enrollment_id),
            )
        )
    rows = (
        await session.scalars(query.order_by(Enrollment.created_at, Enrollment.id).limit(limit + 1))
    ).all()
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1])
    return rows, None
