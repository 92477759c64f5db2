"""The inbox under load, as production runs it (INBOX_APPLY=background): payment messages of
concurrent requests stored by one group commit, acknowledged once stored, and credited right
after, each once, by a worker per process; also across processes, and after a process died
between the store and the credit."""

import asyncio
import re
import signal
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.banks import group_commit
from app.banks.crediting import InboxRuntime
from app.config import InboxApply, Settings
from app.db.engine import create_engine
from app.db.unit import Database
from app.ledger.types import AccountKind
from app.models import BankMessage, Enrollment
from tests.banks.gm_bank import GmBank, enrollment_awaiting_payment, totals
from tests.factories import auth
from tests.test_idempotency_unit import Service


@pytest.fixture
async def app(
    request: pytest.FixtureRequest, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FastAPI]:
    """The service in background mode; with the parameter `IDLE`, one that stores and then
    credits nothing, as a process that died right after its commits."""
    from app.main import create_app

    if getattr(request, "param", None) == IDLE:
        monkeypatch.setattr(InboxRuntime, "start", lambda self: None)
    application = create_app(Settings(database_url=database_url, inbox_apply=InboxApply.background))
    async with application.router.lifespan_context(application):
        yield application


IDLE = "idle"
idle_worker = pytest.mark.parametrize("app", [IDLE], indirect=True)


async def notify(client: httpx.AsyncClient, gm: GmBank, message: dict) -> httpx.Response:
    body, headers = gm.signed(message)
    return await client.post(f"/v1/banks/{gm.slug}/notify", content=body, headers=headers)


async def statuses(engine, gm: GmBank) -> list[str]:
    rows = await Database(engine).run(
        lambda s: s.scalars(select(BankMessage.status).where(BankMessage.bank_slug == gm.slug))
    )
    return sorted(rows)


async def paid(engine, enrollment_ids: list[str]) -> dict[str, int]:
    """What each enrollment has been paid (0 until its payment is credited)."""
    rows = await Database(engine).run(
        lambda s: s.execute(
            select(Enrollment.id, Enrollment.paid_fen).where(
                Enrollment.id.in_([uuid.UUID(i) for i in enrollment_ids])
            )
        )
    )
    return {str(row.id): row.paid_fen for row in rows}


async def test_concurrent_payments_are_stored_together_and_each_credited_once(
    app, engine, client, gm, monkeypatch
):
    batch_sizes: list[int] = []
    real_store_batch = group_commit.store_batch

    async def measured(connection, batch):
        batch_sizes.append(len(batch))
        return await real_store_batch(connection, batch)

    monkeypatch.setattr(group_commit, "store_batch", measured)
    # Verifying a gmbank signature takes this one test process longer than the writer's usual
    # wait for company: let it wait long enough for the requests to share commits.
    app.state.inbox.writer.max_wait = 0.05
    enrollments = [await enrollment_awaiting_payment(client, gm) for _ in range(6)]
    payments = [gm.credit(e["order_no"], e["amount_fen"]) for e in enrollments]
    unknown = [gm.credit(f"NOORDER{n}", 1_000 + n) for n in range(30)]
    tampered = [gm.credit(e["order_no"], e["amount_fen"]) for e in enrollments[:3]]

    async def badly_signed(message: dict) -> httpx.Response:
        body, headers = gm.signed(message)
        body = body.replace(b'"CNY"', b'"CNZ"')  # signed, then changed on the way
        return await client.post(f"/v1/banks/{gm.slug}/notify", content=body, headers=headers)

    # Every payment sent twice at once (resends, new nonces), in the middle of the rest.
    replies = await asyncio.gather(
        *(notify(client, gm, message) for message in payments + unknown + payments),
        *(badly_signed(message) for message in tampered),
    )

    good, bad = replies[: -len(tampered)], replies[-len(tampered) :]
    assert [reply.json()["code"] for reply in good] == ["0000"] * len(good)
    assert [reply.status_code for reply in bad] == [401] * len(bad)
    assert max(batch_sizes) > 1  # the requests did share commits
    await app.state.inbox.drain()
    money = await totals(engine, gm)
    credited = sum(e["amount_fen"] for e in enrollments)
    held = sum(message_amount(m) for m in unknown)
    assert (money[AccountKind.escrow_cash], money[AccountKind.suspense]) == (
        credited + held,
        held,
    )
    assert await paid(engine, [e["id"] for e in enrollments]) == {
        e["id"]: e["amount_fen"] for e in enrollments
    }
    assert await statuses(engine, gm) == sorted(
        ["processed"] * (len(payments) + len(unknown)) + ["rejected"] * len(tampered)
    )


def message_amount(message: dict) -> int:
    return int(message["amount"].replace(".", ""))


async def until_paid(engine, enrollment: dict, seconds: float = 10.0) -> int:
    """The enrollment's paid amount once the credit is visible, or 0 after `seconds`."""
    for _ in range(int(seconds / 0.05)):
        amount = (await paid(engine, [enrollment["id"]]))[enrollment["id"]]
        if amount:
            return amount
        await asyncio.sleep(0.05)
    return 0


async def test_the_worker_credits_a_payment_shortly_after_the_reply(app, engine, client, gm):
    enrollment = await enrollment_awaiting_payment(client, gm)
    reply = await notify(client, gm, gm.credit(enrollment["order_no"], enrollment["amount_fen"]))
    assert reply.json()["code"] == "0000"
    # No drain: the worker alone, woken by the commit.
    assert await until_paid(engine, enrollment) == enrollment["amount_fen"]


@idle_worker
async def test_a_stored_payment_shows_as_lag_until_the_job_credits_it(engine, client, gm):
    enrollment = await enrollment_awaiting_payment(client, gm)
    reply = await notify(client, gm, gm.credit(enrollment["order_no"], enrollment["amount_fen"]))
    assert reply.json()["code"] == "0000"
    assert await statuses(engine, gm) == ["stored"]
    assert await paid(engine, [enrollment["id"]]) == {enrollment["id"]: 0}
    await asyncio.sleep(0.1)
    metrics = (await client.get("/metrics")).text
    [lag] = re.findall(r"^bank_inbox_lag_seconds (\S+)$", metrics, re.M)
    assert float(lag) >= 0.1

    job = await client.post(
        "/v1/admin/jobs/process_inbox", headers=auth(gm.world.admin_key), json={}
    )
    assert job.json()["handled"] >= 1
    assert await paid(engine, [enrollment["id"]]) == {enrollment["id"]: enrollment["amount_fen"]}
    assert await statuses(engine, gm) == ["processed"]


@idle_worker
async def test_a_payment_stored_by_a_process_that_died_is_credited_by_the_next(engine, client, gm):
    enrollment = await enrollment_awaiting_payment(client, gm)
    message = gm.credit(enrollment["order_no"], enrollment["amount_fen"])
    body, headers = gm.signed(message)
    doomed = await asyncio.to_thread(Service, "inbox.stored", {"INBOX_APPLY": "background"})
    try:
        async with httpx.AsyncClient(base_url=doomed.url) as http:
            with pytest.raises(httpx.TransportError):  # killed right after the commit
                await http.post(f"/v1/banks/{gm.slug}/notify", content=body, headers=headers)
        assert doomed.process.wait(10) == -signal.SIGKILL
    finally:
        doomed.stop()
    assert await statuses(engine, gm) == ["stored"]
    assert await paid(engine, [enrollment["id"]]) == {enrollment["id"]: 0}

    # The next process credits it by itself (its worker's poll), with no request to it.
    survivor = await asyncio.to_thread(Service, "", {"INBOX_APPLY": "background"})
    try:
        assert await until_paid(engine, enrollment) == enrollment["amount_fen"]
        # The bank, which got no reply, sends it again: acknowledged, nothing more.
        async with httpx.AsyncClient(base_url=survivor.url) as http:
            body, headers = gm.signed(message)
            again = await http.post(f"/v1/banks/{gm.slug}/notify", content=body, headers=headers)
        assert again.json()["code"] == "0000"
    finally:
        await asyncio.to_thread(survivor.stop)
    assert (await totals(engine, gm))[AccountKind.escrow_cash] == enrollment["amount_fen"]
    assert await statuses(engine, gm) == ["processed"]


@pytest.mark.postgres_only
@idle_worker
async def test_two_processes_workers_never_credit_one_message_twice(
    database_url, engine, client, gm
):
    enrollments = [await enrollment_awaiting_payment(client, gm) for _ in range(4)]
    messages = [gm.credit(e["order_no"], e["amount_fen"]) for e in enrollments]
    messages += [gm.credit(f"NOORDER{n}", 100 + n) for n in range(60)]
    for message in messages:
        assert (await notify(client, gm, message)).json()["code"] == "0000"
    assert await statuses(engine, gm) == ["stored"] * len(messages)

    # Two processes' workers (each its own engine and pool) take the same messages at once.
    engines = [create_engine(database_url, pool_size=3) for _ in range(2)]
    try:
        runtimes = [InboxRuntime(Database(e), InboxApply.background) for e in engines]
        handled = await asyncio.gather(*(runtime.drain() for runtime in runtimes))
    finally:
        for other in engines:
            await other.dispose()
    assert sum(handled) == len(messages)  # each message applied by exactly one of them
    assert await statuses(engine, gm) == ["processed"] * len(messages)
    money = await totals(engine, gm)
    assert money[AccountKind.escrow_cash] == sum(message_amount(m) for m in messages)
    assert await paid(engine, [e["id"] for e in enrollments]) == {
        e["id"]: e["amount_fen"] for e in enrollments
    }
