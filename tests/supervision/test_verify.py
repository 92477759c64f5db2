"""GET /v1/regulator/ledger/verify: intact, then tampered; the latest checkpoint compared; scoped."""

from app.kit.clock import utcnow
from app.ledger import service as ledger
from app.ledger.chain import GENESIS_HASH
from tests.factories import auth, make_paid_enrollment, make_world
from tests.ledger.conftest import db_id, tamper
from tests.supervision.helpers import add_institution

VERIFY = "/v1/regulator/ledger/verify"


async def _verify(client, key, **params):
    response = await client.get(VERIFY, params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


async def test_an_intact_journal_then_a_tampered_one(engine, client):
    world = await make_world(engine, release_lag_days=0)
    await make_paid_enrollment(engine, world, lessons=10, released=2)
    one = {"institution_id": str(world.institution_id)}
    [before] = (await _verify(client, world.regulator_key, **one))["items"]
    assert before["intact"] is True and before["problem"] is None
    assert before["verified_through_seq"] == before["head_seq"] >= 3
    assert len(before["verified_through_hash"]) == 64
    assert before["last_checkpoint"] == {"status": "none", "day": None, "seq": None, "hash": None}

    async with engine.begin() as connection:
        await ledger.checkpoint(connection, utcnow())
    [published] = (await _verify(client, world.regulator_key, **one))["items"]
    assert published["last_checkpoint"]["status"] == "matches"
    assert published["last_checkpoint"]["seq"] == before["head_seq"]
    assert published["last_checkpoint"]["hash"] == before["verified_through_hash"]

    # Someone with the database's powers makes entry 2 pay more.
    await tamper(
        engine,
        "UPDATE ledger_postings SET amount_fen = amount_fen * 2 "
        "WHERE institution_id = :i AND entry_seq = 2",
        i=db_id(engine, world.institution_id),
    )
    [after] = (await _verify(client, world.regulator_key, **one))["items"]
    assert after["intact"] is False
    assert (after["first_bad_seq"], after["verified_through_seq"]) == (2, 1)
    assert "entry 2 was altered" in after["problem"]
    assert after["last_checkpoint"]["status"] == "disagrees"
    # The operator sees the same; another jurisdiction's regulator nothing of it.
    assert (await _verify(client, world.admin_key, **one))["items"] == [after]
    other = await make_world(engine)
    response = await client.get(VERIFY, params=one, headers=auth(other.regulator_key))
    assert response.status_code == 404
    assert (
        await client.get(VERIFY, params=one, headers=auth(world.institution_key))
    ).status_code == 404


async def test_a_jurisdiction_verified_page_by_page(engine, client):
    world = await make_world(engine)
    siblings = [await add_institution(engine, world) for _ in range(2)]
    await make_paid_enrollment(engine, siblings[0], lessons=2)
    elsewhere = await make_world(engine)
    items, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await _verify(client, world.regulator_key, **params)
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert {item["institution_id"] for item in items} == {
        str(w.institution_id) for w in [world, *siblings]
    }
    assert str(elsewhere.institution_id) not in {item["institution_id"] for item in items}
    assert all(item["intact"] for item in items)
    empty = next(i for i in items if i["institution_id"] == str(world.institution_id))
    assert (empty["verified_through_seq"], empty["verified_through_hash"]) == (0, GENESIS_HASH)
