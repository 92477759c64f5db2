"""The regulator's view of many institutions at once: each one's balance view, filtered.

INTERFACE (shared by the regulator's list and the balances export): `balance_rows` returns one page
of (institution, balance view) in id order, after `after`. A page costs a fixed handful of queries
however many institutions it holds: the institutions, then `figures_of`'s set-based reads (see
`app.supervision.views.balance_views`)."""

import base64
import binascii
from datetime import datetime
from uuid import UUID

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.balances.schemas import BalanceView
from app.kit.pagination import InvalidCursor
from app.models import Institution
from app.supervision.views import balance_views


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
    `bank` the custodian bank's slug, `level` the alert level as it is now; `as_of` a past moment
    for the views."""
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
    institutions = list((await session.scalars(query)).all())
    views = await balance_views(session, institutions, as_of)
    return list(zip(institutions, views, strict=True))


def encode_cursor(institution_id: UUID) -> str:
    return base64.urlsafe_b64encode(institution_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> UUID:
    try:
        return UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidCursor("the cursor is not one this list gave out") from None
