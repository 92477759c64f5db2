"""Idempotency-Key on POST: one execution per (caller, key), replays, refusals, released keys.

The generic behaviour on a test route; the transaction it shares with a real route's change, the
sealed records and authentication first are in tests/test_idempotency_unit.py."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import func, select

from app.config import Settings
from app.db.unit import Database
from app.main import create_app
from app.models.api_key import Role
from app.models.idempotency_record import IdempotencyRecord
from tests.factories import auth, make_key

PAYMENTS = "/test/payments"


class PaymentIn(BaseModel):
    amount_fen: int


@dataclass
class PaymentHandler:
    """The test route's behaviour and the count of its executions."""

    runs: int = 0
    delay_seconds: float = 0.0
    # "raise" or "503": how the next execution fails, if it should.
    fail_next: str | None = None


def mount_payments(app: FastAPI, handler: PaymentHandler) -> None:
    router = APIRouter()

    @router.post(PAYMENTS, status_code=201)
    async def create_payment(payment: PaymentIn) -> JSONResponse:
        handler.runs += 1
        await asyncio.sleep(handler.delay_seconds)
        failure, handler.fail_next = handler.fail_next, None
        if failure == "raise":
            raise RuntimeError("the bank adapter fell over")
        if failure == "503":
            return JSONResponse({"detail": "try later"}, status_code=503)
        payment_id = str(uuid.uuid4())
        return JSONResponse(
            {"id": payment_id, "amount_fen": payment.amount_fen},
            status_code=201,
            headers={"Location": f"{PAYMENTS}/{payment_id}"},
        )

    app.include_router(router)


@pytest.fixture
def handler() -> PaymentHandler:
    return PaymentHandler()


@pytest.fixture
def app(app: FastAPI, handler: PaymentHandler) -> FastAPI:
    mount_payments(app, handler)
    return app


@pytest.fixture
async def tokens(engine) -> dict[str, str]:
    """Two live keys: the layer serves authenticated callers only."""
    return {
        "token-a": await make_key(engine, Role.admin),
        "token-b": await make_key(engine, Role.admin),
    }


def new_key() -> str:
    # The PostgreSQL test database outlives a run: keys must never meet an earlier run's.
    return f"test-{uuid.uuid4()}"


_TOKENS: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _known_tokens(tokens):
    _TOKENS.clear()
    _TOKENS.update(tokens)


async def post_payment(
    client: httpx.AsyncClient, key: str, amount_fen: int = 500, token: str = "token-a"
) -> httpx.Response:
    return await client.post(
        PAYMENTS,
        json={"amount_fen": amount_fen},
        headers={"Idempotency-Key": key, **auth(_TOKENS[token])},
    )


async def test_sequential_repeats_run_once_and_replay_the_first_response(client, handler):
    key = new_key()
    responses = [await post_payment(client, key) for _ in range(10)]

    assert handler.runs == 1
    first, *repeats = responses
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    for repeat in repeats:
        assert repeat.status_code == 201
        assert repeat.headers["idempotent-replayed"] == "true"
        assert repeat.content == first.content
        assert repeat.headers["content-type"] == first.headers["content-type"]
        assert repeat.headers["location"] == first.headers["location"]


# With a slow handler the others arrive while the first runs; with a fast one they race its
# completion, and meet the record in every state.
@pytest.mark.parametrize("delay_seconds", [0.2, 0.0])
async def test_concurrent_repeats_run_once(client, handler, delay_seconds):
    handler.delay_seconds = delay_seconds
    key = new_key()
    responses = await asyncio.gather(*(post_payment(client, key) for _ in range(20)))

    assert handler.runs == 1
    executed = [
        r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers
    ]
    assert len(executed) == 1
    for response in responses:
        if response.status_code == 409:
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "idempotency_in_progress"
        else:
            assert response.status_code == 201
            assert response.content == executed[0].content


async def test_same_key_with_a_different_body_is_refused(client, handler):
    key = new_key()
    await post_payment(client, key, amount_fen=500)
    reused = await post_payment(client, key, amount_fen=501)

    assert handler.runs == 1
    assert reused.status_code == 422
    assert reused.headers["content-type"] == "application/problem+json"
    assert reused.json()["code"] == "idempotency_key_reused"


async def test_same_key_from_another_caller_runs_separately(client, handler):
    key = new_key()
    first = await post_payment(client, key, token="token-a")
    other = await post_payment(client, key, token="token-b")

    assert handler.runs == 2
    assert {first.status_code, other.status_code} == {201}
    assert first.json()["id"] != other.json()["id"]
    assert not any("idempotent-replayed" in r.headers for r in (first, other))


@pytest.mark.parametrize("authorization", [None, "Bearer pgk_not-a-key-of-ours"])
async def test_a_caller_without_a_live_key_is_never_replayed_to_and_leaves_no_record(
    client, handler, engine, authorization
):
    key = new_key()
    headers = {"Idempotency-Key": key}
    if authorization:
        headers["Authorization"] = authorization
    before = await _record_count(engine)
    responses = [
        await client.post(PAYMENTS, json={"amount_fen": 500}, headers=headers) for _ in range(2)
    ]

    # The route itself needs no key: it ran each time, and nothing was kept for anyone to replay.
    assert handler.runs == 2
    assert not any("idempotent-replayed" in r.headers for r in responses)
    assert await _record_count(engine) == before


async def _record_count(engine) -> int:
    return await Database(engine).run(
        lambda session: session.scalar(select(func.count()).select_from(IdempotencyRecord))
    )


@pytest.mark.parametrize("failure", ["raise", "503"])
async def test_a_server_error_releases_the_key(client, handler, failure):
    handler.fail_next = failure
    key = new_key()
    failed = await post_payment(client, key)
    retried = await post_payment(client, key)

    assert failed.status_code >= 500
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
    assert handler.runs == 2


async def test_a_client_error_is_replayed(client, handler):
    key = new_key()
    headers = {
        "Idempotency-Key": key,
        "Content-Type": "application/json",
        **auth(_TOKENS["token-a"]),
    }
    first = await client.post(PAYMENTS, content=b'{"amount_fen": "lots"}', headers=headers)
    repeat = await client.post(PAYMENTS, content=b'{"amount_fen": "lots"}', headers=headers)

    assert handler.runs == 0
    assert first.status_code == repeat.status_code == 422
    assert repeat.headers["idempotent-replayed"] == "true"
    assert repeat.headers["content-type"] == "application/problem+json"
    assert repeat.content == first.content


async def test_a_streamed_body_reaches_the_handler_whole_and_is_recognised_on_repeat(
    client, handler
):
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in (b'{"amount_', b'fen": 7', b"00}"):
            yield chunk

    key = new_key()
    headers = {
        "Idempotency-Key": key,
        "Content-Type": "application/json",
        **auth(_TOKENS["token-a"]),
    }
    first = await client.post(PAYMENTS, content=chunks(), headers=headers)
    repeat = await client.post(PAYMENTS, content=b'{"amount_fen": 700}', headers=headers)

    assert first.status_code == 201
    assert first.json()["amount_fen"] == 700
    assert repeat.headers["idempotent-replayed"] == "true"
    assert handler.runs == 1


async def test_a_key_longer_than_255_characters_is_invalid(client, handler):
    response = await post_payment(client, "k" * 256)

    assert handler.runs == 0
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert problem["errors"][0]["loc"] == ["header", "Idempotency-Key"]


async def test_without_a_key_every_request_runs(client, handler):
    for _ in range(2):
        await client.post(PAYMENTS, json={"amount_fen": 500})

    assert handler.runs == 2


async def test_an_expired_record_is_replaced(database_url, handler):
    # A zero TTL makes every stored response expired by the time the next request comes.
    app = create_app(Settings(database_url=database_url, idempotency_ttl_hours=0))
    mount_payments(app, handler)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        key = new_key()
        first = await post_payment(client, key)
        second = await post_payment(client, key, amount_fen=900)

    assert handler.runs == 2
    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]
    assert "idempotent-replayed" not in second.headers
