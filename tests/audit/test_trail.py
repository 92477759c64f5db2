"""The audit trail through the API: every operator and regulator action and every money movement,
with who, what, when and from where; scoped like everything else; nothing for a failed action."""

import uuid

from sqlalchemy import text

from app.models.api_key import Role
from tests.audit.helpers import trail
from tests.factories import (
    auth,
    make_institution,
    make_key,
    make_paid_enrollment,
    make_world,
    valid_uscc,
)
from tests.ledger.conftest import db_id

# httpx's ASGI transport reports this peer for every request.
PEER = "127.0.0.1"


async def _key_id(client, admin_key: str, key: str) -> str:
    prefix = key[:12]
    response = await client.get("/v1/api-keys", params={"limit": 500}, headers=auth(admin_key))
    rows = response.json()["items"]
    while response.json()["next_cursor"]:
        response = await client.get(
            "/v1/api-keys",
            params={"limit": 500, "cursor": response.json()["next_cursor"]},
            headers=auth(admin_key),
        )
        rows += response.json()["items"]
    [row] = [row for row in rows if key.startswith(row["key_prefix"]) and prefix]
    return row["id"]


async def test_freeze_and_unfreeze_are_recorded_with_who_what_when_where(engine, client):
    world = await make_world(engine)
    path = f"/v1/regulator/institutions/{world.institution_id}"
    headers = auth(world.regulator_key)
    assert (
        await client.post(f"{path}/freeze", json={"reason": "跑路"}, headers=headers)
    ).is_success
    assert (
        await client.post(f"{path}/unfreeze", json={"reason": "ok"}, headers=headers)
    ).is_success

    items = await trail(
        client, world.regulator_key, institution_id=str(world.institution_id), action=None
    )
    actions = [item for item in items if item["source"] == "action"]
    assert [item["action"] for item in actions] == ["institution.freeze", "institution.unfreeze"]
    freeze = actions[0]
    regulator_id = await _key_id(client, world.admin_key, world.regulator_key)
    assert freeze["actor"] == {"role": "regulator", "id": regulator_id}
    assert freeze["address"] == PEER
    assert freeze["details"] == {"reason": "跑路"}
    assert freeze["institution_id"] == str(world.institution_id)
    assert (freeze["object_type"], freeze["object_id"]) == (
        "institution",
        str(world.institution_id),
    )
    assert freeze["at"].endswith(("Z", "+00:00")) and freeze["seq"] < actions[1]["seq"]


async def test_operator_actions_are_recorded(engine, client):
    admin_key = await make_key(engine, Role.admin)
    headers = auth(admin_key)
    code = f"A{uuid.uuid4().hex[:8]}"
    created = await client.post(
        "/v1/jurisdictions", json={"code": code, "name": "某县"}, headers=headers
    )
    assert created.status_code == 201, created.text
    profile = await client.put(
        f"/v1/jurisdictions/{code}/profile", json={"holdback_pct": 5}, headers=headers
    )
    assert profile.status_code == 200, profile.text
    institution = await client.post(
        "/v1/institutions",
        json={
            "name": "某某培训学校",
            "uscc": valid_uscc(),
            "license_no": "L1",
            "category": "subject",
            "jurisdiction_code": code,
            "bank_slug": "ums",
            "escrow_account_no": f"6222{uuid.uuid4().int % 10**15:015d}",
            "basic_account_no": "62280000000001",
            "basic_account_name": "某某培训学校",
        },
        headers=headers,
    )
    assert institution.status_code == 201, institution.text
    institution_id = institution.json()["id"]
    key = await client.post(
        "/v1/api-keys",
        json={"role": "regulator", "name": "县教育局", "jurisdiction_code": code},
        headers=headers,
    )
    assert key.status_code == 201, key.text
    revoked = await client.post(f"/v1/api-keys/{key.json()['id']}/revoke", headers=headers)
    assert revoked.status_code == 200, revoked.text
    job = await client.post("/v1/admin/jobs/expire_enrollments", headers=headers)
    assert job.status_code == 200, job.text

    mine = [
        item
        for item in await trail(client, admin_key, action=None)
        if item["address"] == PEER
        and item["actor"]["role"] == "admin"
        and (
            (item["details"] or {}).get("jurisdiction_code") == code
            or item["institution_id"] == institution_id
            or item["object_id"] in (key.json()["id"], "expire_enrollments")
        )
    ]
    by_action = {item["action"]: item for item in mine}
    assert {
        "jurisdiction.create",
        "jurisdiction.profile",
        "institution.create",
        "api_key.create",
        "api_key.revoke",
        "job.run",
    } <= by_action.keys()
    assert by_action["jurisdiction.profile"]["details"]["profile"]["holdback_pct"] == 5
    assert by_action["institution.create"]["institution_id"] == institution_id
    assert by_action["api_key.create"]["institution_id"] is None  # a jurisdiction's key
    assert by_action["job.run"]["details"]["handled"] >= 0

    # The new jurisdiction's regulator sees the actions that name it, not the other jurisdictions'.
    regulator_key = await make_key(engine, Role.regulator, jurisdiction_code=code)
    seen = await trail(client, regulator_key)
    assert {"jurisdiction.create", "institution.create"} <= {item["action"] for item in seen}
    assert all(item["institution_id"] in (None, institution_id) for item in seen), (
        "a regulator sees its own jurisdiction's trail only"
    )
    assert all(
        item["institution_id"] == institution_id
        or (item["details"] or {}).get("jurisdiction_code") == code
        for item in seen
    )


async def test_a_refused_action_records_nothing(engine, client):
    world = await make_world(engine)
    before = await trail(client, world.admin_key, institution_id=str(world.institution_id))
    # Freeze without a reason: 422; a regulator of another jurisdiction: 404.
    path = f"/v1/regulator/institutions/{world.institution_id}/freeze"
    assert (await client.post(path, json={}, headers=auth(world.regulator_key))).status_code == 422
    other = await make_world(engine)
    refused = await client.post(path, json={"reason": "x"}, headers=auth(other.regulator_key))
    assert refused.status_code == 404
    # An institution whose USCC is invalid: nothing created, nothing recorded.
    bad = await client.post(
        "/v1/institutions",
        json={
            "name": "x",
            "uscc": "91110000000000000X",
            "license_no": "L",
            "category": "subject",
            "jurisdiction_code": world.jurisdiction_code,
            "bank_slug": "ums",
            "escrow_account_no": "1",
            "basic_account_no": "2",
            "basic_account_name": "x",
        },
        headers=auth(world.admin_key),
    )
    assert bad.status_code == 422
    after = await trail(client, world.admin_key, institution_id=str(world.institution_id))
    assert after == before
    assert not [
        item
        for item in await trail(client, world.regulator_key)
        if item["action"].startswith("institution.create") and item["details"]["name"] == "x"
    ]


async def test_money_movements_carry_who_moved_them(engine, client):
    world = await make_world(engine, min_balance_floor_fen=0, release_lag_days=0)
    await make_paid_enrollment(engine, world, lessons=10, released=5)
    paid = await client.post(
        "/v1/payouts", json={"amount_fen": 20_000}, headers=auth(world.institution_key)
    )
    assert paid.status_code == 201, paid.text
    items = await trail(client, world.regulator_key, institution_id=str(world.institution_id))
    money = [item for item in items if item["source"] == "money"]
    assert money, "every journal entry is in the trail"
    # Paged one at a time, actions and money interleave in the same order, none twice.
    one_by_one = await trail(
        client, world.regulator_key, institution_id=str(world.institution_id), limit=1
    )
    assert one_by_one == items
    assert [i["action"] for i in items if i["source"] == "money"] == [i["action"] for i in money]
    only_payouts = await trail(
        client,
        world.admin_key,
        institution_id=str(world.institution_id),
        action=money[-1]["action"],
    )
    assert only_payouts and {i["action"] for i in only_payouts} == {money[-1]["action"]}
    payout = money[-1]
    institution_key_id = await _key_id(client, world.admin_key, world.institution_key)
    assert payout["actor"] == {"role": "institution", "id": institution_key_id}
    assert payout["address"] == PEER and payout["details"]["amount_fen"] == 20_000
    assert payout["action"].startswith("money.")
    # The factory's entries were posted by no request: their actor is unknown, honestly.
    assert money[0]["actor"] == {"role": "unknown", "id": "unknown"}

    # The journal still verifies, the actor and address chained with each entry.
    response = await client.get(
        "/v1/regulator/audit/verify",
        params={"institution_id": str(world.institution_id)},
        headers=auth(world.regulator_key),
    )
    assert response.json()["intact"] is True
    from tests.ledger.conftest import verify as verify_ledger

    assert (await verify_ledger(engine, world.institution_id)).intact


async def test_a_job_moves_money_in_its_own_name(engine, client):
    world = await make_world(engine, parent_auto_confirm_workdays=0)
    await make_paid_enrollment(engine, world, lessons=4, pending=2)
    ran = await client.post(
        "/v1/admin/jobs/auto_confirm_lessons",
        json={"as_of": "2099-01-01T00:00:00+08:00"},
        headers=auth(world.admin_key),
    )
    assert ran.status_code == 200, ran.text
    items = await trail(client, world.admin_key, institution_id=str(world.institution_id))
    by_job = [
        item for item in items if item["actor"] == {"role": "job", "id": "auto_confirm_lessons"}
    ]
    assert by_job and all(item["source"] == "money" and item["address"] == PEER for item in by_job)


async def test_filters_by_time_and_pages_without_repeats(engine, client):
    world = await make_world(engine)
    path = f"/v1/regulator/institutions/{world.institution_id}"
    for n in range(5):
        await client.post(f"{path}/freeze", json={"reason": f"r{n}"}, headers=auth(world.admin_key))
    everything = await trail(client, world.admin_key, institution_id=str(world.institution_id))
    paged = await trail(client, world.admin_key, institution_id=str(world.institution_id), limit=2)
    assert paged == everything and len({item["id"] for item in paged}) == len(paged) >= 5
    third = everything[2]["at"]
    since = await trail(
        client, world.admin_key, institution_id=str(world.institution_id), since=third
    )
    until = await trail(
        client, world.admin_key, institution_id=str(world.institution_id), until=third
    )
    assert all(item["at"] >= third for item in since)
    assert since + until == everything or {i["id"] for i in since} | {i["id"] for i in until} == {
        i["id"] for i in everything
    }
    freezes = await trail(
        client,
        world.admin_key,
        institution_id=str(world.institution_id),
        action="institution.freeze",
    )
    assert [item["details"]["reason"] for item in freezes] == [f"r{n}" for n in range(5)]


async def test_outsiders_get_404_or_422(engine, client):
    world = await make_world(engine)
    other = await make_world(engine)
    url = "/v1/regulator/audit"
    mine = {"institution_id": str(world.institution_id)}
    assert (
        await client.get(url, params=mine, headers=auth(other.regulator_key))
    ).status_code == 404
    assert (
        await client.get(f"{url}/verify", params=mine, headers=auth(other.regulator_key))
    ).status_code == 404
    for key in (world.institution_key,):
        assert (await client.get(url, headers=auth(key))).status_code == 404
    assert (await client.get(url)).status_code == 401
    assert (
        await client.get(url, params={"cursor": "nonsense"}, headers=auth(world.admin_key))
    ).json()["code"] == "invalid_cursor"
    backwards = await client.get(
        url,
        params={"since": "2026-01-02T00:00:00+08:00", "until": "2026-01-01T00:00:00+08:00"},
        headers=auth(world.admin_key),
    )
    assert backwards.status_code == 422 and backwards.json()["code"] == "invalid_period"
    naive = await client.get(
        url, params={"since": "2026-01-02T00:00:00"}, headers=auth(world.admin_key)
    )
    assert naive.status_code == 422
    # Another jurisdiction's actions never show.
    await client.post(
        f"/v1/regulator/institutions/{other.institution_id}/freeze",
        json={"reason": "x"},
        headers=auth(other.regulator_key),
    )
    seen = await trail(client, world.regulator_key)
    assert str(other.institution_id) not in {item["institution_id"] for item in seen}


async def test_the_database_refuses_to_change_or_remove_a_record(engine, client):
    world = await make_world(engine)
    await client.post(
        f"/v1/regulator/institutions/{world.institution_id}/freeze",
        json={"reason": "x"},
        headers=auth(world.regulator_key),
    )
    for statement in (
        "UPDATE audit_records SET action = 'nothing' WHERE institution_id = :i",
        "DELETE FROM audit_records WHERE institution_id = :i",
        "DELETE FROM audit_heads WHERE institution_id = :i",
        "UPDATE audit_heads SET last_seq = 0 WHERE institution_id = :i",
    ):
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    text(statement), {"i": db_id(engine, world.institution_id)}
                )
        except Exception as error:  # the database's own refusal
            assert "audit" in str(error)
        else:
            raise AssertionError(f"{statement} was allowed")
    await make_institution(engine, world.jurisdiction_code)  # the trail still writes
