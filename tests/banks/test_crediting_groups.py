"""Crediting stored payments of several institutions: one transaction for them all where the
deployment is one database (GROUP_COMMIT_SCOPE=database), one per institution where it is sharded
(`institution`); each payment credited once either way, a bad message never holding back the
others, and replies waiting for crediting when it falls behind (the backlog bound)."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.banks import crediting
from app.banks.crediting import InboxRuntime
from app.config import GroupCommitScope, InboxApply, Settings
from app.db.engine import create_engine
from app.db.unit import Database
from app.ledger import service as ledger
from app.ledger.types import AccountKind
from app.models import BankMessage, LedgerEntry
from app.models.api_key import Role
from tests.banks.gm_bank import GmBank, enrollment_awaiting_payment
from tests.factories import World, make_institution, make_key


@pytest.fixture(params=[GroupCommitScope.database, GroupCommitScope.institution])
def scope(request: pytest.FixtureRequest) -> GroupCommitScope:
    return request.param


@pytest.fixture
async def app(
    database_url: str, scope: GroupCommitScope, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FastAPI]:
    """The service in background mode with its worker idle: each test credits with `drain`."""
    from app.main import create_app

    monkeypatch.setattr(InboxRuntime, "start", lambda self: None)
    application = create_app(
        Settings(
            database_url=database_url,
            inbox_apply=InboxApply.background,
            group_commit_scope=scope,
        )
    )
    async with application.router.lifespan_context(application):
        yield application


async def schools(engine, gm: GmBank, count: int) -> list[GmBank]:
    """`gm` and `count - 1` more institutions holding an escrow account at the same bank."""
    found = [gm]
    for _ in range(count - 1):
        school = await make_institution(engine, gm.world.jurisdiction_code, bank_slug=gm.slug)
        world = World(
            jurisdiction_code=gm.world.jurisdiction_code,
            institution_id=school.id,
            escrow_account_no=school.escrow_account_no,
            institution_key=await make_key(engine, Role.institution, institution_id=school.id),
            regulator_key=gm.world.regulator_key,
            admin_key=gm.world.admin_key,
        )
        found.append(replace(gm, world=world))
    return found


async def notify(client: httpx.AsyncClient, bank: GmBank, message: dict) -> httpx.Response:
    body, headers = bank.signed(message)
    return await client.post(f"/v1/banks/{bank.slug}/notify", content=body, headers=headers)


async def statuses(engine, slug: str) -> dict[str, str]:
    rows = await Database(engine).run(
        lambda s: s.execute(
            select(BankMessage.message_id, BankMessage.status).where(BankMessage.bank_slug == slug)
        )
    )
    return {row.message_id: row.status for row in rows}


async def payment_entries(engine, bank: GmBank) -> int:
    return await Database(engine).run(
        lambda s: s.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(
                LedgerEntry.institution_id == bank.world.institution_id,
                LedgerEntry.kind == "payment",
            )
        )
    )


async def escrow_and_intact(engine, bank: GmBank) -> tuple[int, bool]:
    async with engine.connect() as connection:
        money = await ledger.balances_by_kind(connection, bank.world.institution_id)
        report = await ledger.verify(connection, bank.world.institution_id)
    return money[AccountKind.escrow_cash], report.intact


def spy_on_groups(monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """The escrow accounts of each group of messages applied in one transaction."""
    groups: list[set[str]] = []
    real = crediting.apply_payment_messages

    async def spied(session, messages):
        groups.append(
            {event.account_no for _, notification in messages for event in notification.events}
        )
        return await real(session, messages)

    monkeypatch.setattr(crediting, "apply_payment_messages", spied)
    return groups


async def test_each_payment_of_several_institutions_is_credited_once(
    app, engine, client, gm, scope, monkeypatch
):
    banks = await schools(engine, gm, 3)
    enrolled = [
        (bank, await enrollment_awaiting_payment(client, bank)) for bank in banks for _ in (1, 2)
    ]
    messages = [(bank, bank.credit(e["order_no"], e["amount_fen"])) for bank, e in enrolled]
    # The bank sends one payment twice under two message ids (same serial: one bank payment),
    # and one message twice (the same id: stored once).
    first_bank, first = messages[0]
    twice_paid = {**first_bank.credit(enrolled[0][1]["order_no"], 1), "serialNo": first["serialNo"]}
    twice_paid["amount"] = first["amount"]
    sent = [*messages, (first_bank, twice_paid), messages[1]]
    for bank, message in sent:
        assert (await notify(client, bank, message)).json()["code"] == "0000"
    groups = spy_on_groups(monkeypatch)

    assert await app.state.inbox.drain() == len(messages) + 1

    accounts = {bank.world.escrow_account_no for bank in banks}
    if scope is GroupCommitScope.database:
        assert groups == [accounts]  # one transaction for the three institutions
    else:
        assert sorted(map(sorted, groups)) == sorted([account] for account in accounts)
    assert set((await statuses(engine, gm.slug)).values()) == {"processed"}
    for bank in banks:
        amounts = [e["amount_fen"] for b, e in enrolled if b is bank]
        assert await payment_entries(engine, bank) == len(amounts)
        assert await escrow_and_intact(engine, bank) == (sum(amounts), True)
    for bank, enrollment in enrolled:
        view = await client.get(
            f"/v1/enrollments/{enrollment['id']}",
            headers={"Authorization": f"Bearer {bank.world.institution_key}"},
        )
        assert view.json()["status"] == "active"


async def test_a_message_that_cannot_be_applied_holds_back_no_other(
    app, engine, client, gm, monkeypatch
):
    banks = await schools(engine, gm, 3)
    enrolled = [(bank, await enrollment_awaiting_payment(client, bank)) for bank in banks]
    messages = [bank.credit(e["order_no"], e["amount_fen"]) for bank, e in enrolled]
    # An account nobody holds (yet): applying it fails, and so does the group it is in.
    nobody = gm.credit("ORDER-OF-NOBODY", 12_300, acctNo=f"NOBODY{uuid.uuid4().hex[:8]}")
    for bank, message in zip([*banks, gm], [*messages, nobody], strict=True):
        assert (await notify(client, bank, message)).json()["code"] == "0000"

    assert await app.state.inbox.drain() == len(messages) + 1

    found = await statuses(engine, gm.slug)
    assert found.pop(nobody["msgId"]) == "failed"
    assert set(found.values()) == {"processed"}
    for bank, enrollment in enrolled:
        assert await escrow_and_intact(engine, bank) == (enrollment["amount_fen"], True)
        assert await payment_entries(engine, bank) == 1


async def test_replies_wait_for_crediting_while_it_is_behind(app, client, gm, monkeypatch):
    inbox = app.state.inbox
    enrollments = [await enrollment_awaiting_payment(client, gm) for _ in range(3)]
    messages = [gm.credit(e["order_no"], e["amount_fen"]) for e in enrollments]

    inbox.caught_up.clear()  # as a pass that found all it may take leaves it
    reply = asyncio.create_task(notify(client, gm, messages[0]))
    await asyncio.sleep(0.3)
    assert not reply.done()  # stored, but the reply waits for crediting
    inbox.caught_up.set()
    assert (await reply).json()["code"] == "0000"

    # Crediting that does not catch up in time: the reply goes anyway (the message is stored).
    monkeypatch.setattr(crediting, "BEHIND_WAIT_SECONDS", 0.1)
    inbox.caught_up.clear()
    assert (await notify(client, gm, messages[1])).json()["code"] == "0000"
    inbox.caught_up.set()
    assert (await notify(client, gm, messages[2])).json()["code"] == "0000"
    assert await inbox.drain() == 3


async def test_a_pass_that_finds_all_it_may_take_marks_crediting_behind(
    app, client, gm, monkeypatch
):
    inbox = app.state.inbox
    for _ in range(5):
        enrollment = await enrollment_awaiting_payment(client, gm)
        message = gm.credit(enrollment["order_no"], enrollment["amount_fen"])
        assert (await notify(client, gm, message)).json()["code"] == "0000"
    monkeypatch.setattr(crediting, "WIDE_GROUP_SIZE", 2)
    monkeypatch.setattr(crediting, "PASS_SIZE", 2)
    monkeypatch.setattr(crediting, "GROUP_SIZE", 2)
    monkeypatch.setattr(crediting, "CONCURRENT_GROUPS", 1)
    seen: list[bool] = []
    real = crediting.credit_stored

    async def observed(db):
        seen.append(inbox.caught_up.is_set())
        return await real(db)

    monkeypatch.setattr(crediting, "credit_stored", observed)
    assert await inbox.drain() == 5
    # Passes of 2, 2, 1 and 0: behind after each full one, caught up after the last.
    assert seen == [True, False, False, True]
    assert inbox.caught_up.is_set()


@pytest.mark.postgres_only
async def test_two_workers_credit_several_institutions_each_payment_once(
    database_url, engine, client, gm, scope
):
    banks = await schools(engine, gm, 4)
    enrolled = [
        (bank, await enrollment_awaiting_payment(client, bank)) for bank in banks for _ in (1, 2, 3)
    ]
    messages = [(bank, bank.credit(e["order_no"], e["amount_fen"])) for bank, e in enrolled]
    messages += [(bank, bank.credit(f"NOORDER{n}", 100 + n)) for n, bank in enumerate(banks * 5)]
    for bank, message in messages:
        assert (await notify(client, bank, message)).json()["code"] == "0000"

    # Two processes' workers (each its own engine and pool) at once.
    settings = Settings(database_url=database_url, group_commit_scope=scope)
    engines = [create_engine(database_url, pool_size=4) for _ in range(2)]
    try:
        runtimes = [InboxRuntime(Database(e, settings), InboxApply.background) for e in engines]
        handled = await asyncio.gather(*(runtime.drain() for runtime in runtimes))
    finally:
        for other in engines:
            await other.dispose()
    assert sum(handled) == len(messages)  # each message applied by exactly one of them
    assert set((await statuses(engine, gm.slug)).values()) == {"processed"}
    for bank in banks:
        sent = sum(int(m["amount"].replace(".", "")) for b, m in messages if b is bank)
        assert await escrow_and_intact(engine, bank) == (sent, True)
        assert await payment_entries(engine, bank) == 3
