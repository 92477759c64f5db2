"""A bank speaks only for its own accounts and instructions (DOMAIN.md, "Bank side"): a message
validly signed by bank X about an escrow account held at bank Y, or about an instruction sent
through bank Y, is refused with X's error reply, stored, and raises a security event and a red alert
for the institution concerned; nothing in it is applied, and a resend raises nothing again."""

import uuid

import httpx
import pytest

from app.ledger.types import AccountKind
from app.models.api_key import Role
from tests.banks.voices import (
    ADAPTERS,
    PUSHING,
    Voice,
    alerts,
    configured_bank,
    messages,
    security_events,
)
from tests.factories import auth, make_institution, make_key, make_paid_enrollment


def assert_refused(reply: httpx.Response, adapter: str) -> None:
    """The bank's own error reply: what makes it resend, and what its people read."""
    assert reply.status_code == 400, reply.text
    if adapter == "gmbank":
        assert reply.json()["code"] == "9002"
    else:
        assert reply.content == {"ums": b"FAILED", "iso20022": b""}[adapter]


async def pending_payout(engine, client: httpx.AsyncClient, bank: Voice) -> dict:
    """A payout of 300 yuan of the bank's institution, instructed through that bank."""
    await make_paid_enrollment(engine, bank.world, lessons=10, released=5)
    created = await client.post(
        "/v1/payouts", json={"amount_fen": 30_000}, headers=bank.institution
    )
    assert created.status_code == 201, created.text
    return created.json()


async def payout_status(client: httpx.AsyncClient, bank: Voice, payout: dict) -> str:
    seen = await client.get(f"/v1/payouts/{payout['id']}", headers=bank.institution)
    return seen.json()["status"]


async def assert_flagged(engine, sender: Voice, concerned: Voice, kind: str, *named: str) -> None:
    """One stored message, refused, one security event and one red alert pointing at it."""
    [stored] = await messages(engine, sender.slug)
    assert stored.status == "refused" and stored.processed_at is None
    assert all(text in stored.detail for text in named), stored.detail
    [event] = await security_events(engine, sender.slug)
    assert (event.kind, event.bank_message_id) == (kind, stored.id)
    [alert] = await alerts(engine, concerned.world.institution_id)
    assert (alert.kind, alert.level, alert.bank_message_id) == (
        "foreign_bank_message",
        "RED",
        stored.id,
    )
    assert sender.slug in alert.reason
    assert await alerts(engine, sender.world.institution_id) == []


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_bank_cannot_credit_an_escrow_account_held_at_another_bank(engine, client, adapter):
    x = await configured_bank(engine, client, adapter)
    y = await configured_bank(engine, client, adapter)
    enrollment = await y.enrollment(client)
    message = x.credit(y.world.escrow_account_no, enrollment["order_no"], enrollment["amount_fen"])

    # Refused, and refused again when the bank resends it: one record, one event, one alert.
    for _ in range(3):
        assert_refused(await x.send(client, message), adapter)

    seen = await client.get(f"/v1/enrollments/{enrollment['id']}", headers=y.institution)
    assert (seen.json()["status"], seen.json()["paid_fen"]) == ("awaiting_payment", 0)
    assert (await y.balances(engine)).get(AccountKind.escrow_cash, 0) == 0
    await assert_flagged(engine, x, y, "foreign_account", y.world.escrow_account_no)

    # The account's own bank is heard.
    own = y.credit(y.world.escrow_account_no, enrollment["order_no"], enrollment["amount_fen"])
    assert (await y.send(client, own)).status_code == 200
    seen = await client.get(f"/v1/enrollments/{enrollment['id']}", headers=y.institution)
    assert seen.json()["status"] == "active"


@pytest.mark.parametrize("victim", ADAPTERS)
@pytest.mark.parametrize("sender", PUSHING)
async def test_a_bank_cannot_fail_a_payout_sent_through_another_bank(
    engine, client, sender, victim
):
    x = await configured_bank(engine, client, sender)
    y = await configured_bank(engine, client, victim)
    payout = await pending_payout(engine, client, y)
    # X says the payout failed (a pain.002 RJCT; a gmbank PAYOUT_RESULT FAIL naming Y's account).
    message = x.result(payout["instruction_id"], y.world.escrow_account_no, 30_000, settled=False)

    for _ in range(2):
        assert_refused(await x.send(client, message), sender)

    # Had it counted, the money would be releasable again and paid out a second time.
    assert await payout_status(client, y, payout) == "pending"
    money = await y.balances(engine)
    assert (money[AccountKind.payout_in_transit], money[AccountKind.releasable]) == (30_000, 20_000)
    kind = "foreign_account" if sender == "gmbank" else "foreign_instruction"
    await assert_flagged(engine, x, y, kind, payout["instruction_id"])


@pytest.mark.parametrize("adapter", PUSHING)
async def test_a_bank_cannot_return_a_payout_settled_through_another_bank(engine, client, adapter):
    x = await configured_bank(engine, client, adapter)
    y = await configured_bank(engine, client, adapter)
    payout = await pending_payout(engine, client, y)
    settled = y.result(payout["instruction_id"], y.world.escrow_account_no, 30_000, settled=True)
    assert (await y.send(client, settled)).status_code == 200
    assert await payout_status(client, y, payout) == "settled"

    # X names its own escrow account, so only the instruction gives it away.
    back = x.returned(payout["instruction_id"], x.world.escrow_account_no, 30_000)
    assert_refused(await x.send(client, back), adapter)

    assert await payout_status(client, y, payout) == "settled"
    assert (await y.balances(engine))[AccountKind.escrow_cash] == 100_000 - 30_000
    assert (await x.balances(engine)).get(AccountKind.escrow_cash, 0) == 0
    await assert_flagged(engine, x, y, "foreign_instruction", payout["instruction_id"])


async def test_a_kept_message_for_an_account_later_opened_at_another_bank_is_refused_then(
    engine, client
):
    """Money for an account nobody holds waits (stored `failed`); when the account turns out to be
    held at another bank, the retry refuses it as it would have been refused at once."""
    x = await configured_bank(engine, client, "gmbank")
    account_no = f"6222{uuid.uuid4().int % 10**15:015d}"
    assert (await x.send(client, x.credit(account_no, "PGORDER1", 12_345))).status_code == 200
    [kept] = await messages(engine, x.slug)
    assert kept.status == "failed"

    y = await configured_bank(engine, client, "iso20022")
    school = await make_institution(
        engine, y.world.jurisdiction_code, bank_slug=y.slug, escrow_account_no=account_no
    )
    admin = auth(await make_key(engine, Role.admin))
    job = await client.post("/v1/admin/jobs/process_inbox", headers=admin, json={})
    assert job.status_code == 200 and job.json()["handled"] == 1

    [refused] = await messages(engine, x.slug)
    assert refused.status == "refused" and account_no in refused.detail
    [event] = await security_events(engine, x.slug)
    assert event.kind == "foreign_account"
    [alert] = await alerts(engine, school.id)
    assert (alert.kind, alert.level, alert.bank_message_id) == (
        "foreign_bank_message",
        "RED",
        refused.id,
    )
    again = await client.post("/v1/admin/jobs/process_inbox", headers=admin, json={})
    assert again.json()["handled"] == 0
