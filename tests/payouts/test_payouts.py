"""Payouts through the API: the minimum-balance rule to the fen, suspension, T+1 release job."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import update

from app.alerts.service import raise_alert
from app.db.unit import Database
from app.kit.clock import utcnow
from app.models import Institution
from app.models.alert import AlertKind
from app.models.api_key import Role
from app.models.institution import AlertLevel
from tests.factories import auth, make_key, make_paid_enrollment, make_world

# 20 lessons of 10,000 fen paid (200,000), 10 released (100,000): U = 100,000; F = 50,000,
# so R = 150,000 and a payout may take B down to R: 50,000 of the 100,000 releasable.
FLOOR = {"min_balance_floor_fen": 50_000, "release_lag_days": 0}


async def _world_with_money(engine, **profile):
    world = await make_world(engine, **{**FLOOR, **profile})
    await make_paid_enrollment(engine, world, lessons=20, released=10)
    return world


async def _set(engine, world, **values):
    await Database(engine).run(
        lambda s: s.execute(
            update(Institution).where(Institution.id == world.institution_id).values(**values)
        )
    )


async def _balance(client, world):
    response = await client.get(
        f"/v1/institutions/{world.institution_id}/balance", headers=auth(world.institution_key)
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_balance_view_shows_the_rule_figures(engine, client):
    world = await _world_with_money(engine)
    view = await _balance(client, world)
    assert (view["ledger_balance_fen"], view["unconsumed_fen"], view["floor_fen"]) == (
        200_000,
        100_000,
        50_000,
    )
    assert (view["required_fen"], view["releasable_fen"], view["headroom_fen"]) == (
        150_000,
        100_000,
        50_000,
    )
    assert view["payout_allowance_fen"] == 50_000
    assert view["coverage_ratio"] == "1.3333" and view["alert_level"] == "GREEN"


async def test_payout_exactly_to_r_and_one_fen_more(engine, client):
    world = await _world_with_money(engine)
    headers = auth(world.institution_key)

    refused = await client.post("/v1/payouts", json={"amount_fen": 50_001}, headers=headers)
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["code"] == "min_balance_violation"
    assert (problem["required_fen"], problem["headroom_fen"], problem["requested_fen"]) == (
        150_000,
        50_000,
        50_001,
    )
    assert refused.headers["content-type"] == "application/problem+json"

    paid = await client.post("/v1/payouts", json={"amount_fen": 50_000}, headers=headers)
    assert paid.status_code == 201, paid.text
    assert paid.json()["status"] == "pending" and paid.json()["amount_fen"] == 50_000
    assert paid.json()["created_at"].endswith(("Z", "+00:00"))  # times carry their offset

    view = await _balance(client, world)
    assert (view["in_transit_fen"], view["releasable_fen"], view["headroom_fen"]) == (
        50_000,
        50_000,
        0,
    )
    assert view["ledger_balance_fen"] - view["in_transit_fen"] == view["required_fen"]
    # Nothing may leave now: the allowance is 0, whatever the amount asked.
    for body in ({"amount_fen": 1}, {}):
        again = await client.post("/v1/payouts", json=body, headers=headers)
        assert again.status_code == 409 and again.json()["code"] == "nothing_releasable"
        assert (again.json()["payout_allowance_fen"], again.json()["headroom_fen"]) == (0, 0)
        assert again.json()["releasable_fen"] == 50_000
        assert again.json().get("requested_fen") == body.get("amount_fen")


async def test_omitted_amount_pays_the_most_allowed(engine, client):
    world = await _world_with_money(engine)
    paid = await client.post("/v1/payouts", json={}, headers=auth(world.institution_key))
    assert paid.status_code == 201 and paid.json()["amount_fen"] == 50_000


async def test_no_body_at_all_is_an_empty_request(engine, client):
    world = await _world_with_money(engine)
    paid = await client.post("/v1/payouts", headers=auth(world.institution_key))
    assert paid.status_code == 201, paid.text
    assert paid.json()["amount_fen"] == 50_000
    assert (await _balance(client, world))["in_transit_fen"] == 50_000
    # The contract's empty body is still checked when one is sent.
    wrong = await client.post(
        "/v1/payouts", json={"amount_fen": "1"}, headers=auth(world.institution_key)
    )
    assert wrong.status_code == 422 and wrong.json()["code"] == "validation_error"


async def test_nothing_releasable_and_more_than_releasable(engine, client):
    world = await make_world(engine, release_lag_days=0)
    await make_paid_enrollment(engine, world, lessons=20, released=0)
    none = await client.post("/v1/payouts", json={}, headers=auth(world.institution_key))
    assert none.status_code == 409 and none.json()["code"] == "nothing_releasable"

    world = await _world_with_money(engine, min_balance_floor_fen=0)
    over = await client.post(
        "/v1/payouts", json={"amount_fen": 100_001}, headers=auth(world.institution_key)
    )
    assert over.status_code == 409 and over.json()["code"] == "amount_exceeds_releasable"


async def test_the_lower_bank_balance_counts(engine, client):
    world = await _world_with_money(engine)
    await _set(engine, world, bank_balance_fen=180_000, bank_balance_as_of=utcnow())
    assert (await _balance(client, world))["headroom_fen"] == 30_000
    refused = await client.post(
        "/v1/payouts", json={"amount_fen": 30_001}, headers=auth(world.institution_key)
    )
    assert refused.json()["code"] == "min_balance_violation"


async def _raise(engine, world, kind, level):
    await Database(engine).run(
        lambda s: raise_alert(s, world.institution_id, kind, level, "test", f"a test {kind}")
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"alert": (AlertKind.reconciliation_break, AlertLevel.yellow)},
        {"alert": (AlertKind.unauthorized_debit, AlertLevel.red)},
        {"status": "frozen"},
        {"list_status": "black"},
    ],
)
async def test_payouts_are_suspended(engine, client, fields):
    """The level comes from the open alerts (the alert engine settles it), or from a freeze."""
    world = await _world_with_money(engine)
    if "alert" in fields:
        await _raise(engine, world, *fields["alert"])
    else:
        await _set(engine, world, **fields)
    refused = await client.post(
        "/v1/payouts", json={"amount_fen": 1}, headers=auth(world.institution_key)
    )
    assert refused.status_code == 409 and refused.json()["code"] == "payouts_suspended"
    assert (refused.json()["releasable_fen"], refused.json()["headroom_fen"]) == (100_000, 50_000)
    assert (await _balance(client, world))["in_transit_fen"] == 0


async def test_monthly_cap_is_a_multiple_of_the_floor(engine, client):
    world = await make_world(
        engine,
        min_balance_floor_fen=10_000,
        monthly_payout_cap_floor_multiple=2,
        release_lag_days=0,
    )
    await make_paid_enrollment(engine, world, lessons=20, released=10)
    headers = auth(world.institution_key)
    assert (
        await client.post("/v1/payouts", json={"amount_fen": 15_000}, headers=headers)
    ).status_code == 201
    over = await client.post("/v1/payouts", json={"amount_fen": 5_001}, headers=headers)
    assert over.status_code == 409 and over.json()["code"] == "monthly_cap_reached"
    assert (over.json()["monthly_cap_left_fen"], over.json()["requested_fen"]) == (5_000, 5_001)
    assert (
        await client.post("/v1/payouts", json={"amount_fen": 5_000}, headers=headers)
    ).status_code == 201

    # The cap is used up while money is releasable and the floor leaves room: the refusal says
    # so, with or without an amount.
    view = await _balance(client, world)
    assert (view["month_payouts_fen"], view["monthly_cap_left_fen"]) == (20_000, 0)
    assert (view["releasable_fen"], view["headroom_fen"], view["payout_allowance_fen"]) == (
        80_000,
        70_000,
        0,
    )
    for body in ({}, {"amount_fen": 1}):
        used_up = await client.post("/v1/payouts", json=body, headers=headers)
        assert used_up.status_code == 409 and used_up.json()["code"] == "monthly_cap_reached"
        assert (used_up.json()["month_payouts_fen"], used_up.json()["floor_fen"]) == (
            20_000,
            10_000,
        )


async def test_payouts_are_seen_only_by_their_institution(engine, client):
    world = await _world_with_money(engine)
    other = await make_world(engine)
    payout = (await client.post("/v1/payouts", json={}, headers=auth(world.institution_key))).json()
    mine = await client.get(f"/v1/payouts/{payout['id']}", headers=auth(world.institution_key))
    assert mine.status_code == 200 and mine.json()["id"] == payout["id"]
    regulator = await client.get(f"/v1/payouts/{payout['id']}", headers=auth(world.regulator_key))
    assert regulator.status_code == 200
    for key in (other.institution_key, other.regulator_key):
        hidden = await client.get(f"/v1/payouts/{payout['id']}", headers=auth(key))
        assert hidden.status_code == 404 and hidden.json()["code"] == "payout_not_found"
        balance = await client.get(
            f"/v1/institutions/{world.institution_id}/balance", headers=auth(key)
        )
        assert balance.status_code == 404
    parent = await make_key(engine, Role.parent, enrollment_id=world.institution_id)
    assert (await client.post("/v1/payouts", json={}, headers=auth(parent))).status_code == 404


@pytest.mark.postgres_only
async def test_concurrent_payouts_never_pass_the_floor_together(engine, client):
    world = await _world_with_money(engine)
    responses = await asyncio.gather(
        *(
            client.post(
                "/v1/payouts", json={"amount_fen": 10_000}, headers=auth(world.institution_key)
            )
            for _ in range(10)
        )
    )
    assert sorted(r.status_code for r in responses) == [201] * 5 + [409] * 5
    # The five refused found the headroom used up: the allowance is 0.
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"nothing_releasable"}
    assert (await _balance(client, world))["headroom_fen"] == 0


async def test_release_job_pays_t_plus_1_once(engine, client):
    world = await make_world(engine, min_balance_floor_fen=50_000)  # release_lag_days = 1
    await make_paid_enrollment(engine, world, lessons=20, released=10)
    admin = auth(world.admin_key)
    now = utcnow()

    async def run(as_of):
        response = await client.post(
            "/v1/admin/jobs/release_payouts", json={"as_of": as_of.isoformat()}, headers=admin
        )
        assert response.status_code == 200, response.text
        return response.json()["handled"]

    await run(now)  # released today: not payable before tomorrow
    assert (await _balance(client, world))["in_transit_fen"] == 0
    tomorrow = now + timedelta(days=1)
    await run(tomorrow)
    view = await _balance(client, world)
    assert view["in_transit_fen"] == 50_000
    await run(tomorrow)  # a second run on the same date pays nothing more
    assert (await _balance(client, world))["in_transit_fen"] == 50_000


@pytest.mark.postgres_only
async def test_two_release_runs_at_once_pay_once(engine, client):
    world = await make_world(engine, min_balance_floor_fen=50_000)
    await make_paid_enrollment(engine, world, lessons=20, released=10)
    tomorrow = (utcnow() + timedelta(days=1)).isoformat()
    runs = await asyncio.gather(
        *(
            client.post(
                "/v1/admin/jobs/release_payouts",
                json={"as_of": tomorrow},
                headers=auth(world.admin_key),
            )
            for _ in range(2)
        )
    )
    assert [r.status_code for r in runs] == [200, 200]
    assert (await _balance(client, world))["in_transit_fen"] == 50_000
