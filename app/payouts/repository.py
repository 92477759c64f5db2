"""The payout queries that take pages."""

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.auth.scope import scoped, scoped_page
from app.kit.pagination import PageRequest
from app.models import Payout
from app.models.payout import PayoutStatus
from app.payouts.errors import PayoutNotFound


async def page(
    session: AsyncSession,
    caller: Principal,
    institution_id: UUID | None,
    status: PayoutStatus | None,
    page_request: PageRequest,
) -> tuple[Sequence[Payout], str | None]:
    """One page of the payouts the caller sees, optionally of one institution or status, oldest
    first."""
    return await scoped_page(
        session, caller, Payout, page_request, institution_id=institution_id, status=status
    )


async def visible_payout(session: AsyncSession, caller: Principal, payout_id: UUID) -> Payout:
    """The payout, to whoever sees its institution; else 404."""
    payout = await scoped(session, caller, Payout, payout_id)
    if payout is None:
        raise PayoutNotFound(f"no payout {payout_id}")
    return payout
