"""Unpaid enrollments expire: the job cancels them once, however often and however many run it."""

import asyncio
from datetime import timedelta

import pytest

from app.db.unit import Database
from app.enrollments.service import expire_unpaid_enrollments
from app.kit.clock import utcnow
from tests.enrollments.helpers import enrolled, expire, make_course, pay
from tests.factories import auth, make_world


async def _status(client, world, enrollment):
    response = await client.get(
        f"/v1/enrollments/{enrollment['id']}", headers=auth(world.institution_key)
    )
    return response.json()["status"]


async def test_an_unpaid_enrollment_is_cancelled_at_its_expiry_and_a_paid_one_is_not(
    client, engine
):
    world = await make_world(engine, unpaid_enrollment_expiry_minutes=30)
    course = await make_course(client, world, lesson_price_fen=100)
    unpaid = await enrolled(client, world, course["id"], 1)
    paid = await enrolled(client, world, course["id"], 1)
    await pay(engine, world, paid)
    db = Database(engine)
    expires_at = utcnow().fromisoformat(unpaid["expires_at"])

    # Asserted on this test's enrollments only: other tests' may fall due at the same moments.
    await expire(db, expires_at - timedelta(seconds=1))
    assert await _status(client, world, unpaid) == "awaiting_payment"
    await expire(db, expires_at)
    assert await _status(client, world, unpaid) == "cancelled"
    assert await _status(client, world, paid) == "active"
    await expire(db, expires_at)  # run again: nothing changes
    assert [await _status(client, world, e) for e in (unpaid, paid)] == ["cancelled", "active"]


async def test_two_runs_at_once_cancel_each_enrollment_once(client, engine):
    world = await make_world(engine, unpaid_enrollment_expiry_minutes=1)
    course = await make_course(client, world, lesson_price_fen=100)
    db = Database(engine)
    start = utcnow()
    made = [await enrolled(client, world, course["id"], 1) for _ in range(6)]

    counts = await asyncio.gather(*(expire(db, start + timedelta(minutes=2)) for _ in range(3)))
    assert sum(counts) >= 6  # other tests' enrollments may be due too
    assert [await _status(client, world, e) for e in made] == ["cancelled"] * 6


@pytest.mark.postgres_only
async def test_a_batch_skips_rows_another_run_holds(client, engine):
    world = await make_world(engine, unpaid_enrollment_expiry_minutes=1)
    course = await make_course(client, world, lesson_price_fen=100)
    db = Database(engine)
    start = utcnow()
    made = [await enrolled(client, world, course["id"], 1) for _ in range(3)]
    due = start + timedelta(minutes=2)
    holding, release = asyncio.Event(), asyncio.Event()

    async def slow_batch(session):
        claimed = await expire_unpaid_enrollments(session, due)
        holding.set()
        await release.wait()  # keep the rows locked until the other run has looked
        return claimed

    first = asyncio.create_task(db.run(slow_batch))
    await holding.wait()
    # The second run returns without waiting for the first's rows (a wait would time out here),
    # and leaves this test's enrollments to the first: they are still awaiting payment.
    await asyncio.wait_for(db.run(lambda session: expire_unpaid_enrollments(session, due)), 10)
    assert [await _status(client, world, e) for e in made] == ["awaiting_payment"] * 3
    release.set()
    assert await first >= 3
    assert [await _status(client, world, e) for e in made] == ["cancelled"] * 3
