"""Institutions through the API: onboarding with its checks, who sees one, lists, and the
regulator's freeze and black/white list."""

import asyncio
import random
import uuid

import pytest

from app.db.unit import Database
from app.ledger import service as ledger
from app.ledger.books import INSTITUTION_KINDS
from app.models.api_key import Role
from tests.enrollments.helpers import enroll, make_course
from tests.factories import (
    World,
    auth,
    make_institution,
    make_jurisdiction,
    make_key,
    make_world,
    valid_uscc,
)


def account_no() -> str:
    return f"6222{random.randrange(10**14):014d}"


def institution_body(code: str, **overrides) -> dict:
    return {
        "name": "Sunshine Arts School",
        "uscc": valid_uscc(),
        "license_no": "教民1101087000123",
        "category": "non_subject",
        "jurisdiction_code": code,
        "bank_slug": "ums",
        "escrow_account_no": account_no(),
        "basic_account_no": account_no(),
        "basic_account_name": "Sunshine Arts School Ltd",
        **overrides,
    }


@pytest.fixture
async def admin(engine):
    return auth(await make_key(engine, Role.admin))


async def listed(client, headers, jurisdiction_code=None, limit=500) -> list[dict]:
    """Every institution the caller lists, walking all pages."""
    items, cursor = [], None
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        if jurisdiction_code:
            params["jurisdiction_code"] = jurisdiction_code
        response = await client.get("/v1/institutions", headers=headers, params=params)
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return items


async def test_the_operator_onboards_an_institution_with_its_ledger_accounts(client, engine, admin):
    code = await make_jurisdiction(engine)
    body = institution_body(code)
    created = await client.post("/v1/institutions", headers=admin, json=body)
    assert created.status_code == 201, created.text
    institution = created.json()
    assert {k: institution[k] for k in body} == body
    assert institution["status"] == "active"
    assert institution["list_status"] == "none"
    assert institution["alert_level"] == "GREEN"
    assert institution["min_balance_floor_fen"] is None

    read = await client.get(f"/v1/institutions/{institution['id']}", headers=admin)
    assert read.status_code == 200
    assert read.json() == institution

    async def kinds(session):
        accounts = await ledger.accounts(await session.connection(), uuid.UUID(institution["id"]))
        return sorted(account.kind for account in accounts.values())

    assert await Database(engine).run(kinds) == sorted(INSTITUTION_KINDS)
    balance = await client.get(f"/v1/institutions/{institution['id']}/balance", headers=admin)
    assert balance.status_code == 200, balance.text
    assert balance.json()["ledger_balance_fen"] == 0


async def test_a_uscc_is_stored_in_its_compact_form(client, engine, admin):
    code = await make_jurisdiction(engine)
    uscc = valid_uscc()
    written = f"{uscc[:8]}-{uscc[8:]}".lower()
    created = await client.post(
        "/v1/institutions", headers=admin, json=institution_body(code, uscc=written)
    )
    assert created.status_code == 201, created.text
    assert created.json()["uscc"] == uscc


def _wrong_check_character(uscc: str) -> str:
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    return uscc[:17] + alphabet[(alphabet.index(uscc[17]) + 1) % len(alphabet)]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_wrong_check_character, "checksum"),
        (lambda uscc: uscc[:17], "length"),
        (lambda uscc: uscc + "0", "length"),
        (lambda uscc: uscc[:10] + "I" + uscc[11:], "format"),  # I is not in the alphabet
        (lambda uscc: "", "length"),
    ],
)
async def test_an_invalid_uscc_is_refused_with_the_reason_and_nothing_is_written(
    client, engine, admin, make, reason
):
    code = await make_jurisdiction(engine)
    response = await client.post(
        "/v1/institutions", headers=admin, json=institution_body(code, uscc=make(valid_uscc()))
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "invalid_uscc"
    assert reason in problem["reason"]
    assert await listed(client, admin, code) == []


async def test_an_unknown_jurisdiction_is_refused(client, admin):
    unknown = f"NOPE-{uuid.uuid4().hex[:8]}"
    response = await client.post("/v1/institutions", headers=admin, json=institution_body(unknown))
    assert response.status_code == 422
    assert response.json()["code"] == "unknown_jurisdiction"
    assert await listed(client, admin, unknown) == []


@pytest.mark.parametrize("field", ["uscc", "escrow_account_no"])
async def test_a_taken_uscc_or_escrow_account_is_refused(client, engine, admin, field):
    code = await make_jurisdiction(engine)
    first = (
        await client.post("/v1/institutions", headers=admin, json=institution_body(code))
    ).json()
    again = institution_body(code, **{field: first[field]})
    response = await client.post("/v1/institutions", headers=admin, json=again)
    assert response.status_code == 409
    assert response.json()["code"] == "institution_exists"
    assert response.json()["field"] == field
    assert [item["id"] for item in await listed(client, admin, code)] == [first["id"]]


async def test_concurrent_onboardings_of_one_uscc_make_one_institution(client, engine, admin):
    code = await make_jurisdiction(engine)
    uscc = valid_uscc()
    responses = await asyncio.gather(
        *(
            client.post("/v1/institutions", headers=admin, json=institution_body(code, uscc=uscc))
            for _ in range(8)
        )
    )
    assert sorted(r.status_code for r in responses) == [201] + [409] * 7
    assert len(await listed(client, admin, code)) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"bank_slug": "UMS"},
        {"bank_slug": ""},
        {"bank_slug": "b" * 33},
        {"escrow_account_no": "1234567"},
        {"escrow_account_no": "1" * 33},
        {"basic_account_no": "6222 0000 1111"},
        {"basic_account_no": "62220000111A"},
        {"category": "sports"},
        {"name": "   "},
        {"name": "School\x00"},  # PostgreSQL cannot store NUL
        {"basic_account_name": "a\nb"},
        {"jurisdiction_code": "has space"},
        {"license_no": ""},
        {"basic_account_name": ""},
        {"status": "frozen"},  # not the caller's to set
    ],
)
async def test_a_malformed_institution_is_refused(client, engine, admin, change):
    code = await make_jurisdiction(engine)
    response = await client.post(
        "/v1/institutions", headers=admin, json=institution_body(code, **change)
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert await listed(client, admin, code) == []


async def test_account_numbers_of_8_and_32_digits_and_a_32_character_slug_are_accepted(
    client, engine, admin
):
    code = await make_jurisdiction(engine)
    body = institution_body(
        code,
        escrow_account_no=f"{random.randrange(10**32):032d}",
        basic_account_no="12345678",
        bank_slug="a-bank_0" + "x" * 24,
    )
    response = await client.post("/v1/institutions", headers=admin, json=body)
    assert response.status_code == 201, response.text


async def test_who_sees_an_institution(client, engine):
    world = await make_world(engine)
    elsewhere = await make_world(engine)
    other_in_jurisdiction = await make_institution(engine, world.jurisdiction_code)
    path = f"/v1/institutions/{world.institution_id}"
    parent = await make_key(engine, Role.parent, enrollment_id=uuid.uuid4())
    bank = await make_key(engine, Role.bank, bank_slug="ums")
    other_key = await make_key(engine, Role.institution, institution_id=other_in_jurisdiction.id)
    for key in (world.admin_key, world.institution_key, world.regulator_key):
        response = await client.get(path, headers=auth(key))
        assert response.status_code == 200
        assert response.json()["id"] == str(world.institution_id)
    for key in (elsewhere.regulator_key, elsewhere.institution_key, other_key, parent, bank):
        response = await client.get(path, headers=auth(key))
        assert response.status_code == 404
        assert response.json()["code"] == "institution_not_found"
    unknown = await client.get(f"/v1/institutions/{uuid.uuid4()}", headers=auth(world.admin_key))
    assert unknown.status_code == 404
    assert (await client.get(path)).status_code == 401


async def test_only_the_operator_onboards(client, engine):
    world = await make_world(engine)
    for key in (world.regulator_key, world.institution_key):
        response = await client.post(
            "/v1/institutions", headers=auth(key), json=institution_body(world.jurisdiction_code)
        )
        assert response.status_code == 404
    assert len(await listed(client, auth(world.admin_key), world.jurisdiction_code)) == 1


async def test_lists_page_by_page_in_onboarding_order(client, engine, admin):
    code = await make_jurisdiction(engine)
    ids = [
        (await client.post("/v1/institutions", headers=admin, json=institution_body(code))).json()[
            "id"
        ]
        for _ in range(5)
    ]
    pages, cursor = [], None
    while True:
        params = {"jurisdiction_code": code, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/institutions", headers=admin, params=params)).json()
        pages.append([item["id"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [ids[0:2], ids[2:4], ids[4:5]]


async def test_a_page_that_ends_the_list_exactly_has_no_next_cursor(client, engine, admin):
    code = await make_jurisdiction(engine)
    for _ in range(2):
        await client.post("/v1/institutions", headers=admin, json=institution_body(code))
    page = await client.get(
        "/v1/institutions", headers=admin, params={"jurisdiction_code": code, "limit": 2}
    )
    assert len(page.json()["items"]) == 2
    assert page.json()["next_cursor"] is None


async def test_a_regulator_lists_only_its_jurisdiction(client, engine):
    world = await make_world(engine)
    second = await make_institution(engine, world.jurisdiction_code)
    elsewhere = await make_world(engine)
    mine = await listed(client, auth(world.regulator_key))
    assert [item["id"] for item in mine] == [str(world.institution_id), str(second.id)]
    # Asking for another jurisdiction shows nothing of it.
    assert await listed(client, auth(world.regulator_key), elsewhere.jurisdiction_code) == []
    everything = [item["id"] for item in await listed(client, auth(world.admin_key))]
    assert {str(world.institution_id), str(elsewhere.institution_id)} <= set(everything)
    assert (
        await client.get("/v1/institutions", headers=auth(world.institution_key))
    ).status_code == 404


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": 0}, "validation_error"),
        ({"limit": 501}, "validation_error"),
        ({"cursor": "not a cursor"}, "invalid_cursor"),
        ({"cursor": "WyJ4IiwgInkiXQ=="}, "invalid_cursor"),  # ["x", "y"]
        ({"jurisdiction_code": "\x00"}, "validation_error"),
    ],
)
async def test_a_bad_limit_or_cursor_is_refused(client, admin, params, code):
    response = await client.get("/v1/institutions", headers=admin, params=params)
    assert response.status_code == 422
    assert response.json()["code"] == code


async def test_limit_500_is_accepted(client, admin):
    response = await client.get("/v1/institutions", headers=admin, params={"limit": 500})
    assert response.status_code == 200


# --- the regulator's controls ---


async def _state(client, world: World) -> tuple[str, str, str]:
    body = (
        await client.get(f"/v1/institutions/{world.institution_id}", headers=auth(world.admin_key))
    ).json()
    return body["status"], body["list_status"], body["alert_level"]


async def _can_enroll(client, world: World, course: dict) -> bool:
    response = await enroll(client, world, course["id"], 10)
    assert response.status_code in {201, 409}, response.text
    return response.status_code == 201


async def test_the_regulator_freezes_and_unfreezes_and_enrollment_follows(client, engine):
    world = await make_world(engine)
    course = await make_course(client, world)
    regulator = auth(world.regulator_key)
    path = f"/v1/regulator/institutions/{world.institution_id}"

    frozen = await client.post(f"{path}/freeze", headers=regulator, json={"reason": "跑路 risk"})
    assert frozen.status_code == 200, frozen.text
    assert (frozen.json()["status"], frozen.json()["alert_level"]) == ("frozen", "FROZEN")
    assert not await _can_enroll(client, world, course)
    again = await client.post(f"{path}/freeze", headers=regulator, json={"reason": "again"})
    assert again.status_code == 200
    assert await _state(client, world) == ("frozen", "none", "FROZEN")

    thawed = await client.post(f"{path}/unfreeze", headers=regulator, json={"reason": "paid up"})
    assert thawed.status_code == 200
    assert await _state(client, world) == ("active", "none", "GREEN")
    assert await _can_enroll(client, world, course)


async def test_the_operator_may_freeze_too(client, engine):
    world = await make_world(engine)
    response = await client.post(
        f"/v1/regulator/institutions/{world.institution_id}/freeze",
        headers=auth(world.admin_key),
        json={"reason": "court order"},
    )
    assert response.status_code == 200
    assert await _state(client, world) == ("frozen", "none", "FROZEN")


async def test_a_blacklisting_holds_the_institution_until_lifted(client, engine):
    world = await make_world(engine)
    course = await make_course(client, world)
    regulator = auth(world.regulator_key)
    list_path = f"/v1/institutions/{world.institution_id}/list"
    freeze_path = f"/v1/regulator/institutions/{world.institution_id}"

    black = await client.put(
        list_path, headers=regulator, json={"list_status": "black", "reason": "fraud"}
    )
    assert black.status_code == 200, black.text
    assert await _state(client, world) == ("active", "black", "FROZEN")
    assert not await _can_enroll(client, world, course)

    # Frozen and blacklisted: lifting one leaves the other in force.
    await client.post(f"{freeze_path}/freeze", headers=regulator, json={"reason": "also"})
    await client.post(f"{freeze_path}/unfreeze", headers=regulator, json={"reason": "x"})
    assert await _state(client, world) == ("active", "black", "FROZEN")
    await client.post(f"{freeze_path}/freeze", headers=regulator, json={"reason": "again"})
    white = await client.put(
        list_path, headers=regulator, json={"list_status": "white", "reason": "cleared"}
    )
    assert white.status_code == 200
    assert await _state(client, world) == ("frozen", "white", "FROZEN")
    await client.post(f"{freeze_path}/unfreeze", headers=regulator, json={"reason": "cleared"})
    assert await _state(client, world) == ("active", "white", "GREEN")
    assert await _can_enroll(client, world, course)

    admin_none = await client.put(
        list_path, headers=auth(world.admin_key), json={"list_status": "none", "reason": "reset"}
    )
    assert admin_none.status_code == 200
    assert await _state(client, world) == ("active", "none", "GREEN")


async def test_outsiders_cannot_freeze_or_list_and_change_nothing(client, engine):
    world = await make_world(engine)
    elsewhere = await make_world(engine)
    outsiders = [elsewhere.regulator_key, world.institution_key, elsewhere.institution_key]
    for key in outsiders:
        for path, call in (
            (f"/v1/regulator/institutions/{world.institution_id}/freeze", "post"),
            (f"/v1/regulator/institutions/{world.institution_id}/unfreeze", "post"),
        ):
            response = await client.request(
                call.upper(), path, headers=auth(key), json={"reason": "not mine"}
            )
            assert response.status_code == 404
        listing = await client.put(
            f"/v1/institutions/{world.institution_id}/list",
            headers=auth(key),
            json={"list_status": "black", "reason": "not mine"},
        )
        assert listing.status_code == 404
    assert await _state(client, world) == ("active", "none", "GREEN")
    unknown = await client.post(
        f"/v1/regulator/institutions/{uuid.uuid4()}/freeze",
        headers=auth(world.admin_key),
        json={"reason": "x"},
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "institution_not_found"


@pytest.mark.parametrize(
    "body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}, {"reason": "x", "y": 1}]
)
async def test_a_freeze_needs_a_reason(client, engine, body):
    world = await make_world(engine)
    response = await client.post(
        f"/v1/regulator/institutions/{world.institution_id}/freeze",
        headers=auth(world.regulator_key),
        json=body,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert await _state(client, world) == ("active", "none", "GREEN")


@pytest.mark.parametrize(
    "body", [{"list_status": "grey", "reason": "x"}, {"list_status": "black"}, {"reason": "x"}]
)
async def test_a_listing_needs_a_known_list_and_a_reason(client, engine, body):
    world = await make_world(engine)
    response = await client.put(
        f"/v1/institutions/{world.institution_id}/list",
        headers=auth(world.regulator_key),
        json=body,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert await _state(client, world) == ("active", "none", "GREEN")
