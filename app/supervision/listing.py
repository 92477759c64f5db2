"""The regulator's view of many institutions at once: each one's balance view, filtered.

INTERFACE (shared by the regulator's list and the balances export): `balance_rows` returns one page
of (institution, balance view) in id order, after `after`. This first version computes each view on
its own; the regulator-list work replaces the body with a bulk computation, keeping the signature."""

from datetime import datetime
from uuid import UUID

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.balances.schemas import BalanceView
from app.balances.service import figures, profile_of
from app.kit.clock import utcnow
from app.models import Institution


async def balance_rows(
    session: AsyncSession,
    jurisdiction_code: str | None,
    *,
    level: str | None = None,
    q: str | None = None,
    bank: str | None = None,
    as_of: datetime | None = None,
    after: UUID | None = None,
    limit: int = 50,
) -> list[tuple[Institution, BalanceView]]:
    """`jurisdiction_code` None: every jurisdiction (the operator). `q` matches the name or USCC,
    `bank` the custodian bank's slug, `level` the alert level; `as_of` a past moment."""
    query = select(Institution).order_by(Institution.id).limit(limit)
    if jurisdiction_code is not None:
        query = query.where(Institution.jurisdiction_code == jurisdiction_code)
    if level is not None:
        query = query.where(Institution.alert_level == level)
    if bank is not None:
        query = query.where(Institution.bank_slug == bank)
    if q:
        query = query.where(or_(Institution.name.contains(q), Institution.uscc.contains(q)))
    if after is not None:
        query = query.where(Institution.id > after)
    moment = as_of or utcnow()
    rows = []
    for institution in (await session.scalars(query)).all():
        profile = await profile_of(session, institution)
        view = BalanceView.of(institution, await figures(session, institution, profile, moment))
        rows.append((institution, view))
    return rows
