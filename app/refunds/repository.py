"""The refund queries that take pages."""

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.auth.scope import scoped, scoped_page
from app.kit.pagination import PageRequest
from app.models import Refund
from app.models.refund import RefundStatus
from app.refunds.errors import RefundNotFound


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
