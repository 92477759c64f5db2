"""Making courses and enrollments through the API, and paying them as a verified bank event."""

import uuid
from datetime import date, datetime
from typing import Any
from uuid import UUID

import httpx
from dateutil.relativedelta import relativedelta
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.unit import Database
from app.enrollments.service import expire_unpaid_enrollments
from app.jobs.registry import in_batches
from app.kit.clock import utcnow
from app.kit.workdays import local_date
from app.ledger import service as ledger
from app.ledger.types import AccountKind
from app.payments.service import BankPayment, PaymentOutcome, credit_payment
from tests.factories import World, auth, valid_id_number

# The expiry job as the scheduler runs it: batch after batch until none is left.
expire = in_batches(expire_unpaid_enrollments)


def today() -> date:
    return local_date(utcnow())


async def make_course(
    client: httpx.AsyncClient,
    world: World,
    lesson_price_fen: int = 10_000,
    starts_on: date | None = None,
    ends_on: date | None = None,
) -> dict[str, Any]:
    starts_on = starts_on or today()
    response = await client.post(
        "/v1/courses",
        headers=auth(world.institution_key),
        json={
            "name": "Piano",
            "category": "non_subject",
            "lesson_price_fen": lesson_price_fen,
            "starts_on": starts_on.isoformat(),
            "ends_on": (ends_on or starts_on + relativedelta(months=3)).isoformat(),
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def enrollment_body(course_id: str, lessons: int, id_number: str | None = None) -> dict[str, Any]:
    return {
        "course_id": course_id,
        "student": {
            "name": "Li Xiaoming",
            "id_number": valid_id_number() if id_number is None else id_number,
        },
        "payer": {"name": "Li Hua", "phone": "13800138000"},
        "lessons": lessons,
        "loan_funded": False,
    }


async def enroll(
    client: httpx.AsyncClient,
    world: World,
    course_id: str,
    lessons: int,
    id_number: str | None = None,
    **overrides: Any,
) -> httpx.Response:
    return await client.post(
        "/v1/enrollments",
        headers=auth(world.institution_key),
        json={**enrollment_body(course_id, lessons, id_number), **overrides},
    )


async def enrolled(
    client: httpx.AsyncClient, world: World, course_id: str, lessons: int, **kwargs: Any
) -> dict[str, Any]:
    response = await enroll(client, world, course_id, lessons, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()


def bank_payment(
    world: World,
    order_no: str | None,
    amount_fen: int,
    reference: str | None = None,
    paid_at: datetime | None = None,
) -> BankPayment:
    return BankPayment(
        bank_slug="ums",
        bank_reference=reference or f"REF{uuid.uuid4().hex[:20]}",
        escrow_account_no=world.escrow_account_no,
        order_no=order_no,
        amount_fen=amount_fen,
        paid_at=paid_at or utcnow(),
    )


async def credit(engine: AsyncEngine, payment: BankPayment) -> PaymentOutcome:
    return await Database(engine).run(lambda session: credit_payment(session, payment))


async def pay(engine: AsyncEngine, world: World, enrollment: dict[str, Any]) -> PaymentOutcome:
    return await credit(
        engine, bank_payment(world, enrollment["order_no"], enrollment["amount_fen"])
    )


async def books(engine: AsyncEngine, institution_id: UUID) -> dict[AccountKind, int]:
    """Balances by account kind, after checking the ledger identity of DOMAIN.md."""
    async with engine.connect() as connection:
        totals = await ledger.balances_by_kind(connection, institution_id)
    owed = sum(amount for kind, amount in totals.items() if kind is not AccountKind.escrow_cash)
    assert totals[AccountKind.escrow_cash] == owed, totals
    return totals
