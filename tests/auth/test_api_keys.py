"""API keys through the API: issued for a role and an existing scope, shown once, listed without
secrets, revoked; 401 without a valid key, 404 for a role an endpoint is not for."""

import uuid

import httpx
import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.db.unit import Database
from app.main import create_app
from app.models import ApiKey
from app.models.api_key import Role
from tests.factories import auth, make_institution, make_jurisdiction, make_key, make_world


@pytest.fixture
async def admin(engine):
    return auth(await make_key(engine, Role.admin))


async def key_count(engine) -> int:
    return await Database(engine).run(
        lambda session: session.scalar(select(func.count()).select_from(ApiKey))
    )


async def issue(client, admin, **body) -> httpx.Response:
    return await client.post("/v1/api-keys", headers=admin, json=body)


async def test_a_regulator_key_is_shown_once_and_sees_its_jurisdiction(client, engine, admin):
    code = await make_jurisdiction(engine)
    created = await issue(
        client, admin, role="regulator", name="Haidian bureau", jurisdiction_code=code
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["role"] == "regulator"
    assert body["name"] == "Haidian bureau"
    assert body["jurisdiction_code"] == code
    assert body["institution_id"] is None and body["bank_slug"] is None
    assert body["revoked_at"] is None
    assert body["key"].startswith(body["key_prefix"])

    read = await client.get(f"/v1/jurisdictions/{code}", headers=auth(body["key"]))
    assert read.status_code == 200


async def test_an_institution_key_sees_its_institution(client, engine, admin):
    code = await make_jurisdiction(engine)
    institution = await make_institution(engine, code)
    created = await issue(
        client, admin, role="institution", name="school", institution_id=str(institution.id)
    )
    assert created.status_code == 201, created.text
    assert created.json()["institution_id"] == str(institution.id)
    read = await client.get(
        f"/v1/institutions/{institution.id}", headers=auth(created.json()["key"])
    )
    assert read.status_code == 200


async def test_bank_and_operator_keys(client, engine, admin):
    bank = await issue(client, admin, role="bank", name="UMS", bank_slug="ums")
    assert bank.status_code == 201, bank.text
    assert bank.json()["bank_slug"] == "ums"
    operator = await issue(client, admin, role="admin", name="second operator")
    assert operator.status_code == 201, operator.text
    second = auth(operator.json()["key"])
    assert (await client.get("/v1/api-keys", headers=second)).status_code == 200


async def test_the_list_shows_every_key_once_without_secrets(client, engine, admin):
    made = [
        (await issue(client, admin, role="bank", name=f"bank {n}", bank_slug="list-test")).json()
        for n in range(3)
    ]
    seen, cursor = [], None
    while True:
        params = {"role": "bank", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await client.get("/v1/api-keys", headers=admin, params=params)
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    ids = [item["id"] for item in seen]
    assert len(ids) == len(set(ids))
    mine = [item for item in seen if item["id"] in {key["id"] for key in made}]
    assert [item["id"] for item in mine] == [key["id"] for key in made]
    for item, key in zip(mine, made, strict=True):
        assert item == {k: v for k, v in key.items() if k != "key"}
    assert all(item["role"] == "bank" for item in seen)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"role": "parent", "name": "p", "enrollment_id": None}, "validation_error"),
        ({"role": "parent", "name": "p"}, "role_not_issuable"),
        ({"role": "regulator", "name": "r"}, "invalid_key_scope"),
        ({"role": "institution", "name": "i"}, "invalid_key_scope"),
        ({"role": "bank", "name": "b"}, "invalid_key_scope"),
        ({"role": "admin", "name": "a", "bank_slug": "ums"}, "invalid_key_scope"),
        (
            {"role": "bank", "name": "b", "bank_slug": "ums", "jurisdiction_code": "X"},
            "invalid_key_scope",
        ),
        (
            {"role": "regulator", "name": "r", "jurisdiction_code": "NOPE-x1"},
            "unknown_jurisdiction",
        ),
        (
            {"role": "institution", "name": "i", "institution_id": str(uuid.uuid4())},
            "unknown_institution",
        ),
        ({"role": "bank", "name": "b", "bank_slug": "UMS"}, "validation_error"),
        ({"role": "root", "name": "x"}, "validation_error"),
        ({"role": "admin", "name": ""}, "validation_error"),
        ({"role": "admin", "name": "a\x00"}, "validation_error"),
        ({"role": "admin"}, "validation_error"),
    ],
)
async def test_a_key_without_a_valid_existing_scope_is_refused_and_none_is_made(
    client, engine, admin, body, code
):
    before = await key_count(engine)
    response = await issue(client, admin, **body)
    assert response.status_code == 422
    assert response.json()["code"] == code
    assert await key_count(engine) == before


async def test_a_regulator_key_with_an_institution_too_is_refused(client, engine, admin):
    world = await make_world(engine)
    before = await key_count(engine)
    response = await issue(
        client,
        admin,
        role="regulator",
        name="r",
        jurisdiction_code=world.jurisdiction_code,
        institution_id=str(world.institution_id),
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_key_scope"
    assert await key_count(engine) == before


async def test_a_revoked_key_is_refused_from_the_next_request_on(client, engine, admin):
    world = await make_world(engine)
    created = (
        await issue(
            client,
            admin,
            role="regulator",
            name="leaving",
            jurisdiction_code=world.jurisdiction_code,
        )
    ).json()
    path = f"/v1/jurisdictions/{world.jurisdiction_code}"
    assert (await client.get(path, headers=auth(created["key"]))).status_code == 200

    revoked = await client.post(f"/v1/api-keys/{created['id']}/revoke", headers=admin)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    refused = await client.get(path, headers=auth(created["key"]))
    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthorized"

    again = await client.post(f"/v1/api-keys/{created['id']}/revoke", headers=admin)
    assert again.status_code == 200
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    # Other keys are untouched.
    assert (await client.get(path, headers=auth(world.regulator_key))).status_code == 200


async def test_revoking_an_unknown_key_is_404(client, admin):
    response = await client.post(f"/v1/api-keys/{uuid.uuid4()}/revoke", headers=admin)
    assert response.status_code == 404
    assert response.json()["code"] == "api_key_not_found"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic eDp5"}, auth("pgk_unknown")],
)
async def test_without_a_valid_key_it_is_401(client, engine, headers):
    before = await key_count(engine)
    for response in (
        await client.get("/v1/api-keys", headers=headers),
        await client.post("/v1/api-keys", headers=headers, json={"role": "admin", "name": "x"}),
    ):
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"
    assert await key_count(engine) == before


async def test_keys_are_the_operators_business_only(client, engine):
    world = await make_world(engine)
    parent = await make_key(engine, Role.parent, enrollment_id=uuid.uuid4())
    victim = (await client.get("/v1/api-keys", headers=auth(world.admin_key))).json()["items"][0]
    before = await key_count(engine)
    for key in (world.regulator_key, world.institution_key, parent):
        for response in (
            await client.get("/v1/api-keys", headers=auth(key)),
            await client.post(
                "/v1/api-keys", headers=auth(key), json={"role": "admin", "name": "escalate"}
            ),
            await client.post(f"/v1/api-keys/{victim['id']}/revoke", headers=auth(key)),
        ):
            # A role an endpoint is not for gets 404, like any object out of scope.
            assert response.status_code == 404
    assert await key_count(engine) == before
    after = (await client.get("/v1/api-keys", headers=auth(world.admin_key))).json()["items"][0]
    assert after == victim


async def test_the_environment_admin_key_bootstraps_a_deployment(database_url):
    bootstrap = f"bootstrap-{uuid.uuid4().hex}"
    app = create_app(Settings(database_url=database_url, admin_api_key=bootstrap))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            code = f"BOOT-{uuid.uuid4().hex[:8]}"
            created = await client.post(
                "/v1/jurisdictions", headers=auth(bootstrap), json={"code": code, "name": "New"}
            )
            assert created.status_code == 201, created.text
            key = await client.post(
                "/v1/api-keys",
                headers=auth(bootstrap),
                json={"role": "regulator", "name": "first", "jurisdiction_code": code},
            )
            assert key.status_code == 201, key.text
            read = await client.get(f"/v1/jurisdictions/{code}", headers=auth(key.json()["key"]))
            assert read.status_code == 200
            near_miss = await client.get(f"/v1/jurisdictions/{code}", headers=auth(bootstrap + "x"))
            assert near_miss.status_code == 401


async def test_without_the_environment_key_it_is_just_an_unknown_key(client):
    response = await client.post(
        "/v1/jurisdictions",
        headers=auth("bootstrap-key-of-another-deployment"),
        json={"code": f"X-{uuid.uuid4().hex[:8]}", "name": "x"},
    )
    assert response.status_code == 401


async def test_a_key_revoked_by_another_process_stops_within_the_cache_time(
    database_url, engine, admin
):
    """Another process's revocation reaches this one's memory of keys only when it runs out: with
    CACHE_SECONDS=0 every request looks its key up, so the revocation holds from the next one."""
    world = await make_world(engine)
    path = f"/v1/jurisdictions/{world.jurisdiction_code}"
    for seconds, still_accepted in ((60, True), (0, False)):
        key = await make_key(engine, Role.regulator, jurisdiction_code=world.jurisdiction_code)
        application = create_app(Settings(database_url=database_url, cache_seconds=seconds))
        async with (
            application.router.lifespan_context(application),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=application), base_url="http://test"
            ) as client,
        ):
            assert (await client.get(path, headers=auth(key))).status_code == 200

            async def revoke_elsewhere(session, key=key):
                row = await session.scalar(select(ApiKey).where(ApiKey.key_prefix == key[:12]))
                row.revoked_at = row.created_at

            await Database(engine).run(revoke_elsewhere)
            after = await client.get(path, headers=auth(key))
            assert (after.status_code == 200) is still_accepted, after.text
