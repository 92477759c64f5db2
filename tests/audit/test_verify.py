"""Tamper evidence: a trail record changed or removed behind the service's back is named."""

from app.models.api_key import Role
from tests.audit.helpers import tamper
from tests.factories import auth, make_key, make_world
from tests.ledger.conftest import db_id


async def _three_actions(client, world) -> None:
    path = f"/v1/regulator/institutions/{world.institution_id}"
    for action, reason in (("freeze", "a"), ("unfreeze", "b"), ("freeze", "c")):
        response = await client.post(
            f"{path}/{action}", json={"reason": reason}, headers=auth(world.regulator_key)
        )
        assert response.is_success, response.text


async def _verify(client, key, **params):
    response = await client.get("/v1/regulator/audit/verify", params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


async def test_an_untouched_trail_verifies(engine, client):
    world = await make_world(engine)
    await _three_actions(client, world)
    report = await _verify(client, world.regulator_key, institution_id=str(world.institution_id))
    assert report["intact"] and report["records_checked"] == 3 and report["chains_checked"] == 1
    whole = await _verify(client, world.regulator_key)
    assert whole["intact"] and whole["records_checked"] >= 3


async def test_an_altered_record_is_named(engine, client):
    world = await make_world(engine)
    await _three_actions(client, world)
    await tamper(
        engine,
        "UPDATE audit_records SET details = :d WHERE institution_id = :i AND seq = 2",
        d='{"reason": "nothing happened"}',
        i=db_id(engine, world.institution_id),
    )
    report = await _verify(client, world.regulator_key, institution_id=str(world.institution_id))
    assert not report["intact"]
    assert report["first_bad_seq"] == 2 and report["verified_through_seq"] == 1
    assert report["institution_id"] == str(world.institution_id)
    assert "record 2 was altered" in report["problem"]
    # The jurisdiction's whole verification finds it too.
    assert not (await _verify(client, world.regulator_key))["intact"]


async def test_an_altered_actor_with_its_hash_recomputed_breaks_the_link(engine, client):
    world = await make_world(engine)
    await _three_actions(client, world)
    await tamper(
        engine,
        "UPDATE audit_records SET actor_id = 'someone else', hash = :h"
        " WHERE institution_id = :i AND seq = 1",
        h="f" * 64,
        i=db_id(engine, world.institution_id),
    )
    report = await _verify(client, world.admin_key, institution_id=str(world.institution_id))
    assert not report["intact"] and report["first_bad_seq"] == 1


async def test_a_removed_record_and_a_removed_tail_are_named(engine, client):
    world = await make_world(engine)
    await _three_actions(client, world)
    i = db_id(engine, world.institution_id)
    await tamper(engine, "DELETE FROM audit_records WHERE institution_id = :i AND seq = 3", i=i)
    report = await _verify(client, world.admin_key, institution_id=str(world.institution_id))
    assert not report["intact"] and report["first_bad_seq"] == 3
    assert report["verified_through_seq"] == 2 and "missing" in report["problem"]
    await tamper(engine, "DELETE FROM audit_records WHERE institution_id = :i AND seq = 1", i=i)
    report = await _verify(client, world.admin_key, institution_id=str(world.institution_id))
    assert not report["intact"] and report["first_bad_seq"] == 1
    assert "record 1 is missing" in report["problem"]


async def test_a_money_movements_actor_is_chained_with_its_entry(engine, client):
    from tests.factories import make_paid_enrollment
    from tests.ledger.conftest import verify as verify_ledger

    world = await make_world(engine, min_balance_floor_fen=0, release_lag_days=0)
    await make_paid_enrollment(engine, world, lessons=4, released=2)
    paid = await client.post("/v1/payouts", json={}, headers=auth(world.institution_key))
    assert paid.status_code == 201, paid.text
    assert (await verify_ledger(engine, world.institution_id)).intact
    await tamper(
        engine,
        "UPDATE ledger_entries SET actor_id = 'someone else'"
        " WHERE institution_id = :i AND actor_id IS NOT NULL",
        i=db_id(engine, world.institution_id),
    )
    report = await verify_ledger(engine, world.institution_id)
    assert not report.intact and "link in the chain is broken" in report.problem


async def test_only_the_operator_and_regulators_verify(engine, client):
    world = await make_world(engine)
    parent_like = await make_key(engine, Role.institution, institution_id=world.institution_id)
    response = await client.get("/v1/regulator/audit/verify", headers=auth(parent_like))
    assert response.status_code == 404
