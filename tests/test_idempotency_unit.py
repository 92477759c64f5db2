"""Idempotency-Key and the change it protects commit together (issue: trust fixes, items 2 to 4).

- a failure after the handler's change rolls the change back and frees the key: a retry makes the
  payout once, never twice;
- a process killed before COMMIT leaves the key free at once; killed after COMMIT, a retry replays;
- a revoked or wrong key gets 401, never a stored response, and no row is written for it;
- a key-issuing response is replayed whole but rests sealed, never in plain text.
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from app.db.unit import Database
from app.jobs.registry import JOBS
from app.kit.clock import utcnow
from app.models import Payout
from app.models.api_key import Role
from app.models.idempotency_record import IdempotencyRecord
from app.payouts import endpoints as payout_endpoints
from tests.conftest import TEST_DATABASE_URL
from tests.enrollments.helpers import enrollment_body, make_course
from tests.factories import auth, make_key, make_paid_enrollment, make_world

FLOOR = {"min_balance_floor_fen": 50_000, "release_lag_days": 0}


async def _world_with_money(engine):
    world = await make_world(engine, **FLOOR)
    await make_paid_enrollment(engine, world, lessons=20, released=10)
    return world


async def _payouts(engine, institution_id) -> int:
    return await Database(engine).run(
        lambda session: session.scalar(
            select(func.count()).select_from(Payout).where(Payout.institution_id == institution_id)
        )
    )


async def _records(engine, **where) -> list[IdempotencyRecord]:
    query = select(IdempotencyRecord)
    for name, value in where.items():
        query = query.where(getattr(IdempotencyRecord, name) == value)
    return list(await Database(engine).run(lambda session: session.scalars(query)))


def _keyed(token: str, key: str) -> dict[str, str]:
    return {**auth(token), "Idempotency-Key": key}


async def test_a_failure_after_the_change_rolls_it_back_and_the_retry_pays_once(
    client, engine, monkeypatch
):
    world = await _world_with_money(engine)
    create = payout_endpoints.service.create_payout
    failures = iter([RuntimeError("the process fell over after the payout was written")])

    async def create_then_fail_once(*args, **kwargs):
        payout = await create(*args, **kwargs)
        if (failure := next(failures, None)) is not None:
            raise failure
        return payout

    monkeypatch.setattr(payout_endpoints.service, "create_payout", create_then_fail_once)
    key = f"payout-{uuid.uuid4()}"
    failed = await client.post(
        "/v1/payouts", json={"amount_fen": 30_000}, headers=_keyed(world.institution_key, key)
    )
    assert failed.status_code == 500
    assert await _payouts(engine, world.institution_id) == 0

    retried = await client.post(
        "/v1/payouts", json={"amount_fen": 30_000}, headers=_keyed(world.institution_key, key)
    )
    again = await client.post(
        "/v1/payouts", json={"amount_fen": 30_000}, headers=_keyed(world.institution_key, key)
    )

    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == retried.json()["id"]
    assert await _payouts(engine, world.institution_id) == 1


async def test_a_refusal_writes_nothing_but_its_replay(client, engine):
    world = await _world_with_money(engine)
    key = f"payout-{uuid.uuid4()}"
    too_much = {"amount_fen": 10_000_000}
    first = await client.post(
        "/v1/payouts", json=too_much, headers=_keyed(world.institution_key, key)
    )
    repeat = await client.post(
        "/v1/payouts", json=too_much, headers=_keyed(world.institution_key, key)
    )

    assert first.status_code == 409
    assert repeat.status_code == 409 and repeat.headers["idempotent-replayed"] == "true"
    assert repeat.json()["code"] == first.json()["code"]
    assert await _payouts(engine, world.institution_id) == 0


@pytest.mark.postgres_only
async def test_many_concurrent_repeats_of_a_payout_pay_once(client, engine):
    world = await _world_with_money(engine)
    key = f"payout-{uuid.uuid4()}"
    responses = await asyncio.gather(
        *(
            client.post(
                "/v1/payouts",
                json={"amount_fen": 10_000},
                headers=_keyed(world.institution_key, key),
            )
            for _ in range(20)
        )
    )

    assert await _payouts(engine, world.institution_id) == 1
    created = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    assert all(
        r.status_code == 201 or r.json()["code"] == "idempotency_in_progress" for r in responses
    )


async def test_a_revoked_key_cannot_replay_what_it_created(client, engine):
    admin = await make_key(engine, Role.admin)
    operator = await client.post(
        "/v1/api-keys", json={"role": "admin", "name": "second operator"}, headers=auth(admin)
    )
    operator_key = operator.json()["key"]
    world = await make_world(engine)
    course = await make_course(client, world)
    body = enrollment_body(course["id"], lessons=10)
    key = f"enroll-{uuid.uuid4()}"
    first = await client.post(
        "/v1/enrollments", json=body, headers=_keyed(world.institution_key, key)
    )
    assert first.status_code == 201, first.text
    assert first.json()["parent_key"]

    revoked = await client.post(
        "/v1/api-keys/" + await _institution_key_id(client, operator_key, world) + "/revoke",
        headers=auth(operator_key),
    )
    assert revoked.status_code == 200
    before = len(await _records(engine))
    replay = await client.post(
        "/v1/enrollments", json=body, headers=_keyed(world.institution_key, key)
    )
    wrong = await client.post("/v1/enrollments", json=body, headers=_keyed("pgk_guessed", key))

    for response in (replay, wrong):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "parent_key" not in response.text
        assert "idempotent-replayed" not in response.headers
    assert len(await _records(engine)) == before


async def _institution_key_id(client, operator_key, world) -> str:
    listed = await client.get("/v1/api-keys?role=institution&limit=500", headers=auth(operator_key))
    prefix = world.institution_key[:12]
    cursor = None
    while True:
        page = listed.json()
        for item in page["items"]:
            if item["key_prefix"] == prefix:
                return item["id"]
        cursor = page["next_cursor"]
        assert cursor, "the institution's key is listed"
        listed = await client.get(
            f"/v1/api-keys?role=institution&limit=500&cursor={cursor}", headers=auth(operator_key)
        )


@pytest.mark.parametrize("what", ["api_key", "parent_key"])
async def test_issued_keys_are_replayed_whole_but_never_rest_in_plain_text(client, engine, what):
    key = f"issue-{uuid.uuid4()}"
    if what == "api_key":
        token = await make_key(engine, Role.admin)
        path, body = "/v1/api-keys", {"role": "admin", "name": "third operator"}
        secret_field = "key"
    else:
        world = await make_world(engine)
        token = world.institution_key
        course = await make_course(client, world)
        path, body = "/v1/enrollments", enrollment_body(course["id"], lessons=10)
        secret_field = "parent_key"
    first = await client.post(path, json=body, headers=_keyed(token, key))
    replay = await client.post(path, json=body, headers=_keyed(token, key))

    assert first.status_code == replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    secret = first.json()[secret_field]
    assert replay.json()[secret_field] == secret  # the client that lost the answer still gets it
    [stored] = await _records(engine, key=key)
    assert secret.encode() not in stored.response
    assert first.json()["id"].encode() not in stored.response  # the whole response is sealed


async def test_expired_records_are_purged_by_a_job(client, engine):
    token = await make_key(engine, Role.admin)
    key = f"purge-{uuid.uuid4()}"
    created = await client.post(
        "/v1/api-keys", json={"role": "admin", "name": "p"}, headers=_keyed(token, key)
    )
    assert created.status_code == 201
    assert len(await _records(engine, key=key)) == 1

    purged = await JOBS["purge_idempotency_records"](Database(engine), utcnow())
    assert len(await _records(engine, key=key)) == 1  # still live: kept
    purged = await JOBS["purge_idempotency_records"](Database(engine), utcnow() + timedelta(days=2))

    assert purged >= 1
    assert await _records(engine, key=key) == []


# --- a real process killed at the worst moments ---


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Service:
    """The service as uvicorn runs it, on the test database, with crash points armed."""

    def __init__(self, crash_points: str = "", settings: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "DATABASE_URL": TEST_DATABASE_URL,
            "ENVIRONMENT": "test",
            "CRASH_POINTS": crash_points,
            "LOG_LEVEL": "WARNING",
            **(settings or {}),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the service did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)


@pytest.mark.parametrize(
    ("crash_point", "retry_replays"),
    [("idempotency.before_commit", False), ("idempotency.after_commit", True)],
)
async def test_a_process_killed_mid_request_leaves_the_key_free_or_replayable(
    engine, crash_point, retry_replays
):
    world = await _world_with_money(engine)
    key = f"payout-{uuid.uuid4()}"
    headers = _keyed(world.institution_key, key)
    doomed = await asyncio.to_thread(Service, crash_point)
    try:
        async with httpx.AsyncClient(base_url=doomed.url) as http:
            with pytest.raises(httpx.TransportError):  # the process died mid-request
                await http.post("/v1/payouts", json={"amount_fen": 30_000}, headers=headers)
        assert doomed.process.wait(10) == -signal.SIGKILL
    finally:
        doomed.stop()
    assert await _payouts(engine, world.institution_id) == (1 if retry_replays else 0)

    survivor = await asyncio.to_thread(Service)
    try:
        async with httpx.AsyncClient(base_url=survivor.url) as http:
            retried = await http.post("/v1/payouts", json={"amount_fen": 30_000}, headers=headers)
    finally:
        await asyncio.to_thread(survivor.stop)

    # Free within the moment the process died (no 409 for a day), and paid exactly once.
    assert retried.status_code == 201, retried.text
    assert ("idempotent-replayed" in retried.headers) is retry_replays
    assert await _payouts(engine, world.institution_id) == 1
