"""The regulator's actions on one institution: the floor, freeze and unfreeze, black and white lists.
Bad bodies are 422 and change nothing; another jurisdiction's regulator gets 404."""

import pytest

from tests.factories import auth, make_paid_enrollment, make_world


def _floor(world):
    return f"/v1/regulator/institutions/{world.institution_id}/floor"


async def _institution(client, world):
    response = await client.get(
        f"/v1/institutions/{world.institution_id}", headers=auth(world.admin_key)
    )
    return response.json()


async def test_setting_the_floor_changes_the_view_and_null_returns_to_the_profile(engine, client):
    world = await make_world(engine, min_balance_floor_fen=20_000)
    await make_paid_enrollment(engine, world, lessons=10)
    key = auth(world.regulator_key)
    response = await client.put(_floor(world), json={"min_balance_floor_fen": 150_000}, headers=key)
    assert response.status_code == 200, response.text
    view = response.json()
    assert (view["floor_fen"], view["required_fen"], view["headroom_fen"]) == (
        150_000,
        250_000,
        -150_000,
    )
    assert (await _institution(client, world))["min_balance_floor_fen"] == 150_000
    response = await client.put(_floor(world), json={"min_balance_floor_fen": 0}, headers=key)
    assert response.json()["floor_fen"] == 0
    response = await client.put(_floor(world), json={"min_balance_floor_fen": None}, headers=key)
    assert response.json()["floor_fen"] == 20_000
    assert (await _institution(client, world))["min_balance_floor_fen"] is None
    # The operator may set it too.
    response = await client.put(
        _floor(world), json={"min_balance_floor_fen": 1}, headers=auth(world.admin_key)
    )
    # The institution's own floor stands instead of the profile's, even a lower one.
    assert response.json()["floor_fen"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"min_balance_floor_fen": -1},
        {"min_balance_floor_fen": "5"},
        {"min_balance_floor_fen": 1.5},
        {"min_balance_floor_fen": 5.0},
        {"min_balance_floor_fen": True},
        {"min_balance_floor_fen": 2**63},
        {},
        {"min_balance_floor_fen": 5, "extra": 1},
        [],
    ],
)
async def test_a_bad_floor_is_422_and_changes_nothing(engine, client, body):
    world = await make_world(engine)
    key = auth(world.regulator_key)
    await client.put(_floor(world), json={"min_balance_floor_fen": 7}, headers=key)
    response = await client.put(_floor(world), json=body, headers=key)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert (await _institution(client, world))["min_balance_floor_fen"] == 7


async def test_outsiders_cannot_set_the_floor(engine, client):
    world = await make_world(engine)
    other = await make_world(engine)
    for key in (other.regulator_key, world.institution_key):
        response = await client.put(
            _floor(world), json={"min_balance_floor_fen": 5}, headers=auth(key)
        )
        assert response.status_code == 404
    assert (await _institution(client, world))["min_balance_floor_fen"] is None


@pytest.mark.parametrize("action", ["freeze", "unfreeze"])
@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": None}, None])
async def test_freeze_and_unfreeze_need_a_reason(engine, client, action, body):
    world = await make_world(engine)
    key = auth(world.regulator_key)
    if action == "unfreeze":
        await client.post(
            f"/v1/regulator/institutions/{world.institution_id}/freeze",
            json={"reason": "audit"},
            headers=key,
        )
    before = await _institution(client, world)
    response = await client.post(
        f"/v1/regulator/institutions/{world.institution_id}/{action}", json=body, headers=key
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    after = await _institution(client, world)
    assert (after["status"], after["alert_level"]) == (before["status"], before["alert_level"])


async def test_the_regulator_path_of_the_lists_blacklists_and_lifts(engine, client):
    world = await make_world(engine)
    other = await make_world(engine)
    path = f"/v1/regulator/institutions/{world.institution_id}/list"
    key = auth(world.regulator_key)
    response = await client.put(path, json={"list_status": "black", "reason": "ran"}, headers=key)
    assert response.status_code == 200, response.text
    assert (response.json()["list_status"], response.json()["alert_level"]) == ("black", "FROZEN")
    for body in ({"list_status": "white"}, {"list_status": "grey", "reason": "x"}):
        assert (await client.put(path, json=body, headers=key)).status_code == 422
    outsider = await client.put(
        path, json={"list_status": "white", "reason": "x"}, headers=auth(other.regulator_key)
    )
    assert outsider.status_code == 404
    assert (await _institution(client, world))["list_status"] == "black"
    response = await client.put(path, json={"list_status": "white", "reason": "ok"}, headers=key)
    assert (response.json()["list_status"], response.json()["alert_level"]) == ("white", "GREEN")
