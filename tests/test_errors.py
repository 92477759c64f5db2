"""Every error is an RFC 9457 problem+json document with a machine-readable code."""

import uuid
from collections.abc import AsyncIterator

import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from app.kit.errors import Conflict
from app.logging import RequestIdFilter

PROBLEM = "application/problem+json"
FROZEN_ID = uuid.UUID("6f1c2c1e-0000-4000-8000-000000000042")


class InstitutionFrozen(Conflict):
    code = "institution_frozen"
    title = "Institution frozen"


class CourseIn(BaseModel):
    name: str
    lesson_price_fen: int


router = APIRouter()


@router.post("/test/courses", status_code=201)
async def create_course(course: CourseIn) -> CourseIn:
    return course


@router.get("/test/frozen")
async def frozen() -> None:
    raise InstitutionFrozen("The institution is frozen by its regulator", institution_id=FROZEN_ID)


@router.get("/test/crash")
async def crash() -> None:
    raise RuntimeError("password=hunter2 in the connection string")


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    app.include_router(router)
    return app


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["title"]
    assert problem["detail"]
    assert problem["instance"] == response.request.url.path
    assert problem["request_id"] == response.headers["x-request-id"]
    return problem


async def test_unknown_route_is_404_not_found(client):
    response = await client.get("/v1/nothing-here")

    problem = assert_problem(response, 404, "not_found")
    # One scheme for every problem type, routing's own included.
    assert problem["type"] == "https://prepaid-guard.dev/problems/not_found"
    assert problem["title"] == "Not Found"


async def test_wrong_method_is_405_with_allowed_methods(client):
    response = await client.delete("/healthz")

    problem = assert_problem(response, 405, "method_not_allowed")
    assert problem["type"] == "https://prepaid-guard.dev/problems/method_not_allowed"
    assert response.headers["allow"] == "GET"


@pytest.mark.parametrize("authorization", [None, "Bearer pgk_unknown", "Basic dXNlcjpwYXNz"])
async def test_401_tells_the_client_how_to_authenticate(client, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.get("/v1/payouts/" + str(uuid.uuid4()), headers=headers)

    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def _chunked(size: int) -> AsyncIterator[bytes]:
    """A body without Content-Length: httpx sends an async iterator chunked."""
    chunk = b"x" * 65536
    for _ in range(size // len(chunk)):
        yield chunk


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/test/courses", {"Content-Type": "application/json"}),
        ("/test/courses", {"Content-Type": "application/json", "Idempotency-Key": "big-1"}),
        ("/v1/payouts", {"Content-Type": "application/json", "Authorization": "Bearer pgk_x"}),
        ("/v1/banks/ums/notify", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("/v1/banks/iso20022/notify", {"Content-Type": "application/xml"}),
    ],
)
async def test_a_chunked_body_over_the_limit_is_413_on_every_route(client, path, headers):
    response = await client.post(path, content=_chunked(2 * 1024 * 1024), headers=headers)

    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")


async def test_a_declared_body_over_the_limit_is_413(client):
    response = await client.post(
        "/test/courses",
        content=b"x" * (1024 * 1024 + 1),
        headers={"Content-Type": "application/json"},
    )

    assert_problem(response, 413, "payload_too_large")


async def test_a_json_body_that_is_not_utf8_is_a_validation_error(client):
    response = await client.post(
        "/test/courses",
        content='{"name": "钢琴"}'.encode("gbk"),
        headers={"Content-Type": "application/json"},
    )

    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["loc"] == ["body"]


async def test_malformed_json_is_validation_error(client):
    response = await client.post(
        "/test/courses", content=b'{"name": ', headers={"Content-Type": "application/json"}
    )

    problem = assert_problem(response, 422, "validation_error")
    assert problem["type"] == "https://prepaid-guard.dev/problems/validation_error"
    assert problem["errors"] and {"loc", "msg"} == set(problem["errors"][0])


async def test_invalid_payload_lists_each_error_with_its_location(client):
    response = await client.post("/test/courses", json={"lesson_price_fen": "free"})

    problem = assert_problem(response, 422, "validation_error")
    assert [error["loc"] for error in problem["errors"]] == [
        ["body", "name"],
        ["body", "lesson_price_fen"],
    ]


async def test_domain_error_carries_its_code_and_extra_members(client):
    response = await client.get("/test/frozen")

    problem = assert_problem(response, 409, "institution_frozen")
    assert problem["type"] == "https://prepaid-guard.dev/problems/institution_frozen"
    assert problem["title"] == "Institution frozen"
    assert problem["detail"] == "The institution is frozen by its regulator"
    assert problem["institution_id"] == str(FROZEN_ID)


async def test_unexpected_exception_is_500_without_leaking_and_logged_with_request_id(
    client, caplog
):
    caplog.handler.addFilter(RequestIdFilter())
    response = await client.get("/test/crash", headers={"X-Request-ID": "crash-1"})

    problem = assert_problem(response, 500, "internal_error")
    assert problem["request_id"] == "crash-1"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    [logged] = [record for record in caplog.records if record.exc_info]
    assert logged.request_id == "crash-1"  # type: ignore[attr-defined]
    assert "hunter2" in str(logged.exc_info[1])  # type: ignore[index]


async def test_openapi_documents_errors_as_problem_json(client):
    document = (await client.get("/openapi.json")).json()

    assert document["info"]["title"] == "PrepaidGuard"
    responses = document["paths"]["/healthz"]["get"]["responses"]
    assert set(responses["4XX"]["content"]) == {PROBLEM}
    assert "code" in responses["5XX"]["content"][PROBLEM]["schema"]["properties"]
