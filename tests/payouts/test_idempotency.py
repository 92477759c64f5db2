"""Idempotency-Key on a money-moving request: however often it is repeated, one payout."""

import asyncio

from tests.factories import auth, make_paid_enrollment, make_world


async def _world(engine):
    world = await make_world(engine, release_lag_days=0)
    await make_paid_enrollment(engine, world, lessons=20, released=10)
    return world


async def _in_transit(client, world):
    view = await client.get(
        f"/v1/institutions/{world.institution_id}/balance", headers=auth(world.institution_key)
    )
    return view.json()["in_transit_fen"]


async def test_ten_sequential_repeats_make_one_payout(engine, client):
    world = await _world(engine)
    headers = auth(world.institution_key) | {"Idempotency-Key": "payout-2026-11-28"}
    responses = [
        await client.post("/v1/payouts", json={"amount_fen": 1_000}, headers=headers)
        for _ in range(10)
    ]
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert [r.headers.get("Idempotent-Replayed") for r in responses] == [None] + ["true"] * 9
    assert await _in_transit(client, world) == 1_000

    other_body = await client.post("/v1/payouts", json={"amount_fen": 2_000}, headers=headers)
    assert other_body.status_code == 422 and other_body.json()["code"] == "idempotency_key_reused"
    assert await _in_transit(client, world) == 1_000


async def test_twenty_concurrent_repeats_make_one_payout(engine, client):
    world = await _world(engine)
    headers = auth(world.institution_key) | {"Idempotency-Key": "concurrent-payout"}
    responses = await asyncio.gather(
        *(
            client.post("/v1/payouts", json={"amount_fen": 1_000}, headers=headers)
            for _ in range(20)
        )
    )
    created = [r for r in responses if r.status_code == 201]
    assert created and len({r.json()["id"] for r in created}) == 1
    others = [r for r in responses if r.status_code != 201]
    assert all(
        r.status_code == 409 and r.json()["code"] == "idempotency_in_progress" for r in others
    )
    assert await _in_transit(client, world) == 1_000
