"""The enrollment queries that take locks or pages."""

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID

from sqlalchemy import Select, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app.auth.principal import Principal
from app.auth.scope import scoped
from app.db.batch import pairs_bound, pairs_in
from app.enrollments.errors import EnrollmentNotFound
from app.enrollments.rules import OPEN_STATUSES
from app.kit.pagination import PageRequest, paginate
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


def _locked_among(column: Any, name: str) -> Select[Enrollment]:
    """An institution's enrollments whose `column` is among the list `name`, locked in id order;
    built once (the institution and the list are parameters)."""
    return (
        select(Enrollment)
        .where(
            Enrollment.institution_id == bindparam("institution_id", type_=Enrollment.id.type),
            column.in_(bindparam(name, expanding=True)),
        )
        .order_by(Enrollment.id)
        .with_for_update()
    )


_LOCKED_BY_IDS = _locked_among(Enrollment.id, "ids")


async def locked_by_order_no(
    session: AsyncSession, institution_id: UUID, order_no: str
) -> Enrollment | None:
    return await session.scalar(
        select(Enrollment)
        .where(Enrollment.institution_id == institution_id, Enrollment.order_no == order_no)
        .with_for_update()
    )


async def locked_by_order_nos_of(
    session: AsyncSession, wanted: Mapping[UUID, Collection[str]]
) -> dict[tuple[UUID, str], Enrollment]:
    """The enrollments of these institutions' orders, in one statement, keyed by (institution,
    order number), locked in the order of (institution, id): two batches of payments (or a batch
    and a group of lesson records) take them in that order, and so never wait on each other in a
    circle, whatever institutions they span."""
    pairs = [
        (institution_id, order_no)
        for institution_id, order_nos in wanted.items()
        for order_no in order_nos
    ]
    if not pairs:
        return {}
    dialect = (await session.connection()).dialect.name
    found = await session.scalars(
        _locked_of_institutions(dialect), pairs_bound("wanted", pairs, dialect)
    )
    return {(enrollment.institution_id, enrollment.order_no): enrollment for enrollment in found}


@cache
def _locked_of_institutions(dialect: str) -> Select[Enrollment]:
    return (
        select(Enrollment)
        .where(pairs_in((Enrollment.institution_id, Enrollment.order_no), "wanted", dialect))
        .order_by(Enrollment.institution_id, Enrollment.id)
        .with_for_update()
    )


# What a payment credited to its order sets on the enrollment (`payments.service.paid_values`).
PAID_COLUMNS = (
    "status",
    "paid_fen",
    "paid_at",
    "payment_reference",
    "payment_channel_order_id",
    "payment_payer_name",
    "payment_payer_account_no",
    "updated_at",
)
_SET_PAID = text("""
    UPDATE enrollments
       SET status = u.status, paid_fen = u.paid_fen, paid_at = u.paid_at,
           payment_reference = u.payment_reference,
           payment_channel_order_id = u.payment_channel_order_id,
           payment_payer_name = u.payment_payer_name,
           payment_payer_account_no = u.payment_payer_account_no, updated_at = u.updated_at
      FROM unnest(CAST(:institution_id AS uuid[]), CAST(:id AS uuid[]),
                  CAST(:status AS varchar[]), CAST(:paid_fen AS bigint[]),
                  CAST(:paid_at AS timestamptz[]), CAST(:payment_reference AS varchar[]),
                  CAST(:payment_channel_order_id AS varchar[]),
                  CAST(:payment_payer_name AS varchar[]),
                  CAST(:payment_payer_account_no AS varchar[]), CAST(:updated_at AS timestamptz[]))
        AS u(institution_id, id, status, paid_fen, paid_at, payment_reference,
             payment_channel_order_id, payment_payer_name, payment_payer_account_no, updated_at)
     WHERE enrollments.institution_id = u.institution_id AND enrollments.id = u.id
""")


async def set_paid(
    session: AsyncSession, paid: Sequence[tuple[Enrollment, dict[str, Any]]]
) -> None:
    """Write the payment columns (PAID_COLUMNS) of these enrollments, locked by the caller: on
    PostgreSQL in one statement whatever their number and institutions, where the session's flush
    would send one per enrollment. The loaded objects are left as written (nothing to flush)."""
    if not paid:
        return
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.execute(
            _SET_PAID,
            {
                "institution_id": [enrollment.institution_id for enrollment, _ in paid],
                "id": [enrollment.id for enrollment, _ in paid],
                **{name: [values[name] for _, values in paid] for name in PAID_COLUMNS},
            },
        )
        for enrollment, values in paid:
            for name, value in values.items():
                set_committed_value(enrollment, name, value)
        return
    for enrollment, values in paid:
        for name, value in values.items():
            setattr(enrollment, name, value)
    await session.flush()


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


async def page(
    session: AsyncSession,
    institution_id: UUID,
    status: EnrollmentStatus | None,
    page_request: PageRequest,
) -> tuple[Sequence[Enrollment], str | None]:
    """One page of the institution's enrollments, oldest first, and the cursor of the next page."""
    query = select(Enrollment).where(Enrollment.institution_id == institution_id)
    if status is not None:
        query = query.where(Enrollment.status == status)
    return await paginate(session, query, page_request, Enrollment.created_at, Enrollment.id)


async def locked_enrollments(
    session: AsyncSession, institution_id: UUID, enrollment_ids: Collection[UUID]
) -> dict[UUID, Enrollment]:
    """The institution's enrollments among `enrollment_ids`, locked in id order (so that two
    transactions locking several never wait on each other in a cycle)."""
    rows = await session.scalars(
        _LOCKED_BY_IDS, {"institution_id": institution_id, "ids": list(enrollment_ids)}
    )
    return {enrollment.id: enrollment for enrollment in rows}


async def visible_enrollment(
    session: AsyncSession, caller: Principal, enrollment_id: UUID
) -> Enrollment:
    """The enrollment, to its parent and whoever sees its institution; else 404."""
    enrollment = await scoped(
        session, caller, Enrollment, enrollment_id, enrollment_of=lambda found: found.id
    )
    if enrollment is None:
        raise EnrollmentNotFound(f"no enrollment {enrollment_id}")
    return enrollment
