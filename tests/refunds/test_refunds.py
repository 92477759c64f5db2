"""Refunds through the API: amount, answers, auto-approval in working days, never blocked."""

from datetime import timedelta

from sqlalchemy import update

from app.db.unit import Database
from app.kit.clock import utcnow
from app.kit.workdays import add_workdays, local_date
from app.models import Institution
from app.models.api_key import Role
from tests.factories import auth, make_key, make_paid_enrollment, make_world


async def _setup(engine, **profile):
    world = await make_world(engine, **profile)
    # 20 lessons of 10,000: 5 confirmed, 3 pending -> 120,000 refundable.
    enrollment = await make_paid_enrollment(engine, world, lessons=20, released=5, pending=3)
    parent = await make_key(engine, Role.parent, enrollment_id=enrollment.id)
    return world, enrollment, parent


async def _ask(client, enrollment, parent, reason="moving away"):
    return await client.post(
        f"/v1/enrollments/{enrollment.id}/refunds", json={"reason": reason}, headers=auth(parent)
    )


async def _balance(client, world):
    return (
        await client.get(
            f"/v1/institutions/{world.institution_id}/balance", headers=auth(world.institution_key)
        )
    ).json()


async def test_refund_requested_approved_and_reserved(engine, client):
    world, enrollment, parent = await _setup(engine, institution_refund_response_workdays=5)
    asked = await _ask(client, enrollment, parent)
    assert asked.status_code == 201, asked.text
    refund = asked.json()
    assert (refund["amount_fen"], refund["status"]) == (120_000, "requested")
    assert refund["respond_by"] == add_workdays(local_date(utcnow()), 5).isoformat()

    approved = await client.post(
        f"/v1/refunds/{refund['id']}/approve", headers=auth(world.institution_key)
    )
    assert approved.status_code == 200, approved.text
    assert (
        approved.json()["status"] == "approved" and approved.json()["decided_by"] == "institution"
    )
    view = await _balance(client, world)
    # The pending lessons' 30,000 stay in prepaid; 120,000 is on its way back.
    assert (view["unconsumed_fen"], view["in_transit_fen"]) == (30_000, 120_000)
    seen = await client.get(f"/v1/refunds/{refund['id']}", headers=auth(parent))
    assert seen.json()["status"] == "approved" and seen.json()["instruction_id"].startswith("RF")


async def test_refund_is_not_blocked_by_the_floor_nor_a_frozen_institution(engine, client):
    world, enrollment, parent = await _setup(engine, min_balance_floor_fen=10_000_000)
    await Database(engine).run(
        lambda s: s.execute(
            update(Institution)
            .where(Institution.id == world.institution_id)
            .values(status="frozen", alert_level="FROZEN", list_status="black")
        )
    )
    refund = (await _ask(client, enrollment, parent)).json()
    approved = await client.post(
        f"/v1/refunds/{refund['id']}/approve", headers=auth(world.institution_key)
    )
    assert approved.status_code == 200 and approved.json()["amount_fen"] == 120_000


async def test_reject_then_no_second_answer(engine, client):
    world, enrollment, parent = await _setup(engine)
    refund = (await _ask(client, enrollment, parent)).json()
    rejected = await client.post(
        f"/v1/refunds/{refund['id']}/reject",
        json={"reason": "course finished"},
        headers=auth(world.institution_key),
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    late = await client.post(
        f"/v1/refunds/{refund['id']}/approve", headers=auth(world.institution_key)
    )
    assert late.status_code == 409 and late.json()["code"] == "refund_not_requested"
    assert (await _balance(client, world))["in_transit_fen"] == 0
    again = await _ask(client, enrollment, parent)  # a rejected refund may be asked for again
    assert again.status_code == 201


async def test_one_open_refund_at_a_time_and_nothing_left(engine, client):
    world, enrollment, parent = await _setup(engine)
    first = (await _ask(client, enrollment, parent)).json()
    second = await _ask(client, enrollment, parent)
    assert second.status_code == 409 and second.json()["code"] == "refund_in_progress"
    await client.post(f"/v1/refunds/{first['id']}/approve", headers=auth(world.institution_key))
    # Approved and in transit: still open until the bank settles it.
    assert (await _ask(client, enrollment, parent)).json()["code"] == "refund_in_progress"

    world2 = await make_world(engine)
    spent = await make_paid_enrollment(engine, world2, lessons=2, released=2)
    spent_parent = await make_key(engine, Role.parent, enrollment_id=spent.id)
    nothing = await _ask(client, spent, spent_parent)
    assert nothing.status_code == 409 and nothing.json()["code"] == "nothing_refundable"


async def test_silence_approves_after_the_working_days(engine, client):
    world, enrollment, parent = await _setup(engine, institution_refund_response_workdays=5)
    refund = (await _ask(client, enrollment, parent)).json()
    respond_by = add_workdays(local_date(utcnow()), 5)
    admin = auth(world.admin_key)

    async def run(day):
        as_of = utcnow() + timedelta(days=(day - local_date(utcnow())).days)
        response = await client.post(
            "/v1/admin/jobs/auto_approve_refunds", json={"as_of": as_of.isoformat()}, headers=admin
        )
        assert response.status_code == 200, response.text

    await run(respond_by)  # the last day to answer: still waiting
    assert (await client.get(f"/v1/refunds/{refund['id']}", headers=auth(parent))).json()[
        "status"
    ] == "requested"
    await run(respond_by + timedelta(days=1))
    await run(respond_by + timedelta(days=1))  # twice: nothing more happens
    seen = (await client.get(f"/v1/refunds/{refund['id']}", headers=auth(parent))).json()
    assert (seen["status"], seen["decided_by"], seen["amount_fen"]) == ("approved", "auto", 120_000)
    assert (await _balance(client, world))["in_transit_fen"] == 120_000


async def test_refunds_are_scoped(engine, client):
    _world, enrollment, parent = await _setup(engine)
    other_world, _other_enrollment, other_parent = await _setup(engine)
    hidden = await _ask(client, enrollment, other_parent)
    assert hidden.status_code == 404
    refund = (await _ask(client, enrollment, parent)).json()
    for key in (other_parent, other_world.institution_key):
        assert (
            await client.get(f"/v1/refunds/{refund['id']}", headers=auth(key))
        ).status_code == 404
    foreign = await client.post(
        f"/v1/refunds/{refund['id']}/approve", headers=auth(other_world.institution_key)
    )
    assert foreign.status_code == 404
    by_parent = await client.post(f"/v1/refunds/{refund['id']}/approve", headers=auth(parent))
    assert by_parent.status_code == 404
    assert (await client.get(f"/v1/refunds/{refund['id']}", headers=auth(parent))).json()[
        "status"
    ] == "requested"
