"""The refund queries that take pages."""

from collections.abc import Collection, Sequence
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.auth.scope import scoped, scoped_page
from app.kit.pagination import PageRequest
from app.models import Refund
from app.models.refund import RefundStatus
from app.refunds.errors import RefundNotFound

# A refund is open until it is settled, rejected, failed or returned; one at a time per enrollment
# for a parent's requests.
OPEN_STATUSES = (RefundStatus.requested, RefundStatus.approved, RefundStatus.sent)


async def page(
    session: AsyncSession,
    caller: Principal,
    institution_id: UUID | None,
    status: RefundStatus | None,
    page_request: PageRequest,
) -> tuple[Sequence[Refund], str | None]:
    """One page of the refunds the caller sees, optionally of one institution or status, oldest
    first."""
    return await scoped_page(
        session, caller, Refund, page_request, institution_id=institution_id, status=status
    )


async def visible_refund(session: AsyncSession, caller: Principal, refund_id: UUID) -> Refund:
    """The refund, to the enrollment's parent and whoever sees its institution; else 404."""
    refund = await scoped(
        session, caller, Refund, refund_id, enrollment_of=lambda found: found.enrollment_id
    )
    if refund is None:
        raise RefundNotFound(f"no refund {refund_id}")
    return refund


async def locked_open_refunds(
    session: AsyncSession, institution_id: UUID, enrollment_ids: Collection[UUID]
) -> dict[UUID, list[Refund]]:
    """The open refunds (requested, approved, sent) of these enrollments, locked, by enrollment."""
    rows = await session.scalars(
        select(Refund)
        .where(
            Refund.institution_id == institution_id,
            Refund.enrollment_id.in_(enrollment_ids),
            Refund.status.in_(OPEN_STATUSES),
        )
        .order_by(Refund.id)
        .with_for_update()
    )
    found: dict[UUID, list[Refund]] = {}
    for refund in rows:
        found.setdefault(refund.enrollment_id, []).append(refund)
    return found
