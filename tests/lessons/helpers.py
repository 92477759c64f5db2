"""Paid enrollments to record lessons against, and the figures a test of lessons looks at."""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

import chinese_calendar
import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.jobs.registry import in_batches
from app.kit.clock import SHANGHAI, utcnow
from app.ledger import service as ledger
from app.ledger.types import AccountKind
from app.lessons.service import auto_confirm_lessons
from app.models.api_key import Role
from tests.factories import World, auth, make_key, make_paid_enrollment

# The job as the scheduler runs it: batch after batch until none is left.
auto_confirm = in_batches(auto_confirm_lessons)


def fifteen_working_days_after(day: date) -> date:
    """Counted here straight from chinese_calendar, independently of app.kit.workdays."""
    counted = 0
    while counted < 15:
        day += timedelta(days=1)
        counted += chinese_calendar.is_workday(day)
    return day


def noon(day: date) -> datetime:
    return datetime.combine(day, time(12), SHANGHAI).astimezone(UTC)


@dataclass
class Paid:
    id: UUID
    institution_id: UUID
    parent_key: str


async def paid_enrollment(
    engine: AsyncEngine,
    world: World,
    lessons: int = 10,
    amount_fen: int = 100_000,
    paid: bool = True,
) -> Paid:
    """An enrollment of `lessons` lessons for `amount_fen` (any amount: an opening balance need not
    divide evenly), paid in full a day ago (`tests.factories.make_paid_enrollment`), and its
    parent's key."""
    enrollment = await make_paid_enrollment(
        engine,
        world,
        lessons=lessons,
        lesson_price_fen=amount_fen // lessons,
        amount_fen=amount_fen,
        paid=paid,
    )
    parent_key = await make_key(engine, Role.parent, enrollment_id=enrollment.id)
    return Paid(enrollment.id, world.institution_id, parent_key)


async def money(engine: AsyncEngine, enrollment: Paid) -> tuple[int, int]:
    """(the enrollment's prepaid balance, the institution's releasable balance), after checking
    the ledger identity of DOMAIN.md."""
    async with engine.connect() as connection:
        accounts = {
            a.code: a
            for a in (await ledger.accounts(connection, enrollment.institution_id)).values()
        }
        totals = await ledger.balances_by_kind(connection, enrollment.institution_id)
    owed = sum(amount for kind, amount in totals.items() if kind is not AccountKind.escrow_cash)
    assert totals[AccountKind.escrow_cash] == owed, totals
    return (
        accounts[f"prepaid:{enrollment.id}"].normal_balance_fen,
        accounts["releasable"].normal_balance_fen,
    )


async def record(
    client: httpx.AsyncClient,
    world: World,
    enrollment: Paid,
    key: str | None = None,
    occurred_at: datetime | None = None,
    count: int = 1,
) -> httpx.Response:
    return await client.post(
        f"/v1/enrollments/{enrollment.id}/lessons",
        headers=auth(world.institution_key),
        json={
            "lesson_key": key or f"L-{uuid.uuid4().hex[:12]}",
            "occurred_at": (occurred_at or utcnow()).isoformat(),
            "count": count,
        },
    )


async def recorded(
    client: httpx.AsyncClient, world: World, enrollment: Paid, **kwargs: Any
) -> dict:
    response = await record(client, world, enrollment, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()


async def enrollment_view(client: httpx.AsyncClient, world: World, enrollment: Paid) -> dict:
    response = await client.get(
        f"/v1/enrollments/{enrollment.id}", headers=auth(world.institution_key)
    )
    assert response.status_code == 200, response.text
    return response.json()
