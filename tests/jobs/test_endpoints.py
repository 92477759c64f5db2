"""POST /v1/admin/jobs/{job}: run a scheduled job now, with or without a body."""

from datetime import datetime, timedelta

from app.kit.clock import utcnow
from app.models.api_key import Role
from tests.factories import auth, make_key


async def test_no_body_at_all_runs_the_job_now(engine, client):
    admin = auth(await make_key(engine, Role.admin))
    before = utcnow()

    response = await client.post("/v1/admin/jobs/auto_approve_refunds", headers=admin)

    assert response.status_code == 200, response.text
    assert response.json()["job"] == "auto_approve_refunds"
    assert before <= datetime.fromisoformat(response.json()["as_of"]) <= utcnow()


async def test_an_empty_body_and_as_of_still_work(engine, client):
    admin = auth(await make_key(engine, Role.admin))
    empty = await client.post("/v1/admin/jobs/auto_approve_refunds", headers=admin, json={})
    assert empty.status_code == 200, empty.text

    later = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    moved = await client.post(
        "/v1/admin/jobs/auto_approve_refunds", headers=admin, json={"as_of": later.isoformat()}
    )
    assert moved.status_code == 200 and datetime.fromisoformat(moved.json()["as_of"]) == later

    unknown_field = await client.post(
        "/v1/admin/jobs/auto_approve_refunds", headers=admin, json={"when": "now"}
    )
    assert unknown_field.status_code == 422
    assert unknown_field.json()["code"] == "validation_error"


async def test_the_openapi_document_says_the_body_is_optional(client):
    operation = (await client.get("/openapi.json")).json()["paths"]["/v1/admin/jobs/{job}"]["post"]
    assert not operation["requestBody"].get("required", False)
