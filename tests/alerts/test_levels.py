"""The level: FROZEN while a regulator holds the institution, whatever the evaluation finds; lifted
only by the regulator, to the worst open alert rather than to GREEN; every change in the history
(from, to, cause, actor), which `level_as_of` reads and the level-changes route lists to the
operator and the institution's regulator alone."""

from app.alerts import engine as alert_engine
from app.db.unit import Database
from app.kit.clock import utcnow
from app.models.api_key import Role
from tests.factories import auth, make_jurisdiction, make_key, make_paid_enrollment, make_world


async def _job(client, world, as_of):
    response = await client.post(
        "/v1/admin/jobs/evaluate_alerts",
        headers=auth(world.admin_key),
        json={"as_of": as_of.isoformat()},
    )
    assert response.status_code == 200, response.text


async def _level(client, world) -> str:
    response = await client.get(
        f"/v1/regulator/institutions/{world.institution_id}/balance",
        headers=auth(world.regulator_key),
    )
    assert response.status_code == 200, response.text
    return response.json()["alert_level"]


async def _changes(client, world, headers=None, query="limit=500"):
    return await client.get(
        f"/v1/regulator/institutions/{world.institution_id}/level-changes?{query}",
        headers=auth(world.regulator_key) if headers is None else headers,
    )


async def _yellow_world(engine, client):
    """An institution below its floor (B = U = 100,000 fen, F = 50,000), found YELLOW by the job."""
    world = await make_world(engine, min_balance_floor_fen=50_000)
    await make_paid_enrollment(engine, world, lessons=10)
    await _job(client, world, utcnow())
    assert await _level(client, world) == "YELLOW"
    return world


async def test_frozen_survives_evaluation_and_unfreezing_returns_to_the_worst_open_alert(
    engine, client
):
    world = await _yellow_world(engine, client)
    regulator = auth(world.regulator_key)
    path = f"/v1/regulator/institutions/{world.institution_id}"

    frozen = await client.post(f"{path}/freeze", headers=regulator, json={"reason": "跑路 rumours"})
    assert frozen.json()["alert_level"] == "FROZEN"
    await _job(client, world, utcnow())
    assert await _level(client, world) == "FROZEN"

    unfrozen = await client.post(f"{path}/unfreeze", headers=regulator, json={"reason": "checked"})
    assert unfrozen.json()["alert_level"] == "YELLOW"  # the floor breach is still open

    changes = (await _changes(client, world)).json()["items"]
    assert [(c["from_level"], c["to_level"]) for c in changes] == [
        ("GREEN", "YELLOW"),
        ("YELLOW", "FROZEN"),
        ("FROZEN", "YELLOW"),
    ]
    assert changes[0]["actor"] == "job:evaluate_alerts"
    assert "floor_breach opened" in changes[0]["cause"]
    assert changes[1]["actor"].startswith("regulator:")
    assert changes[1]["cause"] == "frozen: 跑路 rumours"
    assert changes[2]["cause"] == "unfrozen: checked"


async def test_unlisting_a_clean_institution_returns_it_to_green(engine, client):
    world = await make_world(engine)
    admin = auth(world.admin_key)
    path = f"/v1/institutions/{world.institution_id}/list"
    black = await client.put(path, headers=admin, json={"list_status": "black", "reason": "fraud"})
    assert black.json()["alert_level"] == "FROZEN"
    white = await client.put(path, headers=admin, json={"list_status": "none", "reason": "cleared"})
    assert white.json()["alert_level"] == "GREEN"
    changes = (await _changes(client, world)).json()["items"]
    assert [c["to_level"] for c in changes] == ["FROZEN", "GREEN"]
    assert all(c["actor"].startswith("admin:") for c in changes)


async def test_level_as_of_reads_the_history(engine, client):
    world = await make_world(engine, min_balance_floor_fen=50_000)
    await make_paid_enrollment(engine, world, lessons=10)
    before = utcnow()
    evaluated = utcnow()
    await _job(client, world, evaluated)
    await client.post(
        f"/v1/regulator/institutions/{world.institution_id}/freeze",
        headers=auth(world.regulator_key),
        json={"reason": "audit"},
    )

    async def at(moment):
        return await Database(engine).run(
            lambda s: alert_engine.level_as_of(s, world.institution_id, moment)
        )

    assert await at(before) == "GREEN"
    assert await at(evaluated) == "YELLOW"
    assert await at(utcnow()) == "FROZEN"


async def test_the_history_is_the_regulators_and_the_operators_alone(engine, client):
    world = await _yellow_world(engine, client)
    other = await make_key(
        engine, Role.regulator, jurisdiction_code=await make_jurisdiction(engine)
    )

    assert (await _changes(client, world, auth(world.admin_key))).status_code == 200
    assert (await _changes(client, world, auth(other))).status_code == 404
    assert (await _changes(client, world, auth(world.institution_key))).status_code in (403, 404)
    assert (await _changes(client, world, {})).status_code == 401
    missing = await client.get(
        "/v1/regulator/institutions/00000000-0000-0000-0000-000000000000/level-changes",
        headers=auth(world.regulator_key),
    )
    assert missing.status_code == 404
    bad_cursor = await _changes(client, world, query="cursor=not-a-cursor")
    assert bad_cursor.status_code == 422
    first = await _changes(client, world, query="limit=1")
    assert len(first.json()["items"]) == 1 and first.json()["next_cursor"] is None


async def test_evaluating_twice_and_at_once_records_one_change(engine, client):
    import asyncio

    from app.jobs.registry import JOBS

    world = await make_world(engine, min_balance_floor_fen=50_000)
    await make_paid_enrollment(engine, world, lessons=10)
    as_of = utcnow()
    await asyncio.gather(*(JOBS["evaluate_alerts"](Database(engine), as_of) for _ in range(3)))
    await _job(client, world, as_of)
    changes = (await _changes(client, world)).json()["items"]
    assert [(c["from_level"], c["to_level"]) for c in changes] == [("GREEN", "YELLOW")]
