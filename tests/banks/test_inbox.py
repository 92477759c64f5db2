"""The inbox through the API, with messages signed here as the bank (gmbank) would sign them:
verified on the raw bytes, stored, applied once, acknowledged with the bank's own replies.

Every test runs twice: with payments credited before the bank's reply (INBOX_APPLY=inline) and
right after it by the crediting worker (background, production's way). `settled` waits for the
credit where a test looks at it, as a user would look a moment after the reply."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.banks.gmbank import signing
from app.config import InboxApply, Settings
from app.db.unit import Database
from app.kit.clock import SHANGHAI, utcnow
from app.ledger import service as ledger
from app.ledger.types import AccountKind
from app.models import Alert, BankMessage, Payout, SecurityEvent
from bank_simulator.keys import bank_keys
from tests.banks.gm_bank import GmBank, count, enrollment_awaiting_payment, totals
from tests.factories import auth, make_institution, make_paid_enrollment


@pytest.fixture(params=list(InboxApply))
async def app(request, database_url: str) -> AsyncIterator[FastAPI]:
    from app.main import create_app

    application = create_app(Settings(database_url=database_url, inbox_apply=request.param))
    async with application.router.lifespan_context(application):
        yield application


async def settled(app: FastAPI) -> None:
    """Every payment acknowledged so far is credited (at once when inline)."""
    await app.state.inbox.drain()


async def test_a_payment_is_credited_and_acknowledged_in_the_banks_words(app, client, gm):
    enrollment = await enrollment_awaiting_payment(client, gm)
    body, headers = gm.signed(gm.credit(enrollment["order_no"], enrollment["amount_fen"]))
    reply = await client.post(f"/v1/banks/{gm.slug}/notify", content=body, headers=headers)
    assert (reply.status_code, reply.json()) == (200, {"code": "0000", "msg": "OK"})
    await settled(app)
    seen = await client.get(
        f"/v1/enrollments/{enrollment['id']}", headers=auth(gm.world.institution_key)
    )
    assert seen.json()["status"] == "active"
    assert seen.json()["paid_fen"] == enrollment["amount_fen"]


async def test_the_same_notification_ten_times_at_once_is_credited_once(app, engine, client, gm):
    enrollment = await enrollment_awaiting_payment(client, gm)
    message = gm.credit(enrollment["order_no"], enrollment["amount_fen"])
    # Each resend is signed afresh (new nonce and time) but carries the same message id.
    copies = [gm.signed(message) for _ in range(10)]
    replies = await asyncio.gather(
        *(
            client.post(f"/v1/banks/{gm.slug}/notify", content=body, headers=headers)
            for body, headers in copies
        )
    )
    assert [reply.json()["code"] for reply in replies] == ["0000"] * 10
    await settled(app)
    assert (await totals(engine, gm))[AccountKind.escrow_cash] == enrollment["amount_fen"]
    assert await count(engine, BankMessage, BankMessage.message_id == message["msgId"]) == 1


@pytest.mark.parametrize(
    "tamper",
    ["body", "signature", "missing", "expired", "other_key"],
)
async def test_a_badly_signed_message_changes_nothing(engine, client, gm, tamper):
    enrollment = await enrollment_awaiting_payment(client, gm)
    message = gm.credit(enrollment["order_no"], enrollment["amount_fen"])
    body, headers = gm.signed(message)
    if tamper == "body":
        body = body.replace(b'"CNY"', b'"CNZ"')
    elif tamper == "signature":
        signature = headers["X-GM-Signature"]
        headers["X-GM-Signature"] = ("0" if signature[0] != "0" else "1") + signature[1:]
    elif tamper == "missing":
        del headers["X-GM-Signature"]
    elif tamper == "expired":
        body, headers = gm.signed(message, at=utcnow() - timedelta(seconds=301))
    else:
        stranger = bank_keys("gmbank").simulator_config["bank_private_key_hex"]
        body = json.dumps(message).encode()
        headers = {
            **signing.sign_headers(
                gm.app_id, stranger, body, int(utcnow().timestamp() * 1000), signing.new_nonce()
            ),
            "Content-Type": "application/json",
        }
    before = await count(engine, SecurityEvent, SecurityEvent.bank_slug == gm.slug)
    reply = await client.post(f"/v1/banks/{gm.slug}/notify", content=body, headers=headers)
    assert reply.status_code == 401
    assert reply.json()["code"] == "9001"
    assert await count(engine, SecurityEvent, SecurityEvent.bank_slug == gm.slug) == before + 1
    assert (await totals(engine, gm))[AccountKind.escrow_cash] == 0
    seen = await client.get(
        f"/v1/enrollments/{enrollment['id']}", headers=auth(gm.world.institution_key)
    )
    assert seen.json()["status"] == "awaiting_payment"


async def test_a_rotated_bank_key_takes_effect_at_once(app, engine, client, gm):
    first = await enrollment_awaiting_payment(client, gm)
    body, headers = gm.signed(gm.credit(first["order_no"], first["amount_fen"]))
    accepted = await client.post(f"/v1/banks/{gm.slug}/notify", content=body, headers=headers)
    assert accepted.status_code == 200
    # The bank moves to a new key pair; the old public key is removed at once.
    new = bank_keys("gmbank")
    put = await client.put(
        f"/v1/banks/{gm.slug}",
        headers=auth(gm.world.admin_key),
        json={
            "adapter": "gmbank",
            "base_url": "http://127.0.0.1:9/bank",
            "config": {
                **gm.service_config,
                "bank_public_key_hex": new.service_config["bank_public_key_hex"],
            },
        },
    )
    assert put.status_code == 200, put.text
    second = await enrollment_awaiting_payment(client, gm)
    old_signed = gm.signed(gm.credit(second["order_no"], second["amount_fen"]))
    refused = await client.post(
        f"/v1/banks/{gm.slug}/notify", content=old_signed[0], headers=old_signed[1]
    )
    assert refused.status_code == 401
    gm.private_key_hex = new.simulator_config["bank_private_key_hex"]
    body, headers = gm.signed(gm.credit(second["order_no"], second["amount_fen"]))
    accepted = await client.post(f"/v1/banks/{gm.slug}/notify", content=body, headers=headers)
    assert accepted.status_code == 200
    await settled(app)
    total = first["amount_fen"] + second["amount_fen"]
    assert (await totals(engine, gm))[AccountKind.escrow_cash] == total


async def test_a_replayed_nonce_is_refused_even_by_another_process(
    app, engine, database_url, client, gm
):
    enrollment = await enrollment_awaiting_payment(client, gm)
    body, headers = gm.signed(gm.credit(enrollment["order_no"], enrollment["amount_fen"]))
    first = await client.post(f"/v1/banks/{gm.slug}/notify", content=body, headers=headers)
    assert first.status_code == 200
    # A second instance of the service (another process, or this one restarted) sees the replay.
    import httpx

    from app.main import create_app

    other = create_app(
        Settings(database_url=database_url, inbox_apply=app.state.settings.inbox_apply)
    )
    async with (
        other.router.lifespan_context(other),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://other") as c,
    ):
        replay = await c.post(f"/v1/banks/{gm.slug}/notify", content=body, headers=headers)
    assert replay.status_code == 401 and replay.json()["code"] == "9001"
    kinds = await Database(engine).run(
        lambda s: s.scalars(select(SecurityEvent.kind).where(SecurityEvent.bank_slug == gm.slug))
    )
    assert list(kinds) == ["replayed_signature"]
    await settled(app)
    assert (await totals(engine, gm))[AccountKind.escrow_cash] == enrollment["amount_fen"]


@pytest.mark.parametrize("amount", ["1000.001", "-1.00", "1e3", "", "1,000.00"])
async def test_an_inexact_amount_is_refused_and_only_the_raw_message_kept(
    engine, client, gm, amount
):
    enrollment = await enrollment_awaiting_payment(client, gm)
    message = {**gm.credit(enrollment["order_no"], enrollment["amount_fen"]), "amount": amount}
    body, headers = gm.signed(message)
    reply = await client.post(f"/v1/banks/{gm.slug}/notify", content=body, headers=headers)
    assert (reply.status_code, reply.json()["code"]) == (400, "9002")
    stored = await Database(engine).run(
        lambda s: s.scalar(select(BankMessage).where(BankMessage.body == body))
    )
    assert stored.status == "malformed" and stored.message_id is None
    assert (await totals(engine, gm))[AccountKind.escrow_cash] == 0


async def test_money_for_an_unknown_order_goes_to_suspense_with_an_alert(app, engine, client, gm):
    body, headers = gm.signed(gm.credit("NOSUCHORDER123", 12_345))
    reply = await client.post(f"/v1/banks/{gm.slug}/notify", content=body, headers=headers)
    assert reply.json()["code"] == "0000"
    await settled(app)
    money = await totals(engine, gm)
    assert (money[AccountKind.escrow_cash], money[AccountKind.suspense]) == (12_345, 12_345)
    kinds = await Database(engine).run(
        lambda s: s.scalars(
            select(Alert.kind).where(Alert.institution_id == gm.world.institution_id)
        )
    )
    assert list(kinds) == ["suspense"]


async def test_a_result_before_the_instruction_is_marked_sent_settles_it(engine, client, gm):
    await make_paid_enrollment(engine, gm.world, lessons=10, released=5)
    created = await client.post(
        "/v1/payouts", json={"amount_fen": 30_000}, headers=auth(gm.world.institution_key)
    )
    assert created.status_code == 201, created.text
    payout = created.json()
    assert payout["status"] == "pending"
    result = {
        "msgId": f"R{uuid.uuid4().hex[:20]}",
        "msgType": "PAYOUT_RESULT",
        "acctNo": gm.world.escrow_account_no,
        "serialNo": f"S{uuid.uuid4().hex[:12]}",
        "amount": "300.00",
        "currency": "CNY",
        "orderNo": None,
        "instrId": payout["instruction_id"],
        "status": "SUCCESS",
        "failReason": None,
        "txnTime": utcnow().astimezone(SHANGHAI).strftime("%Y%m%d%H%M%S"),
    }
    body, headers = gm.signed(result)
    reply = await client.post(f"/v1/banks/{gm.slug}/notify", content=body, headers=headers)
    assert reply.json()["code"] == "0000"
    seen = await client.get(f"/v1/payouts/{payout['id']}", headers=auth(gm.world.institution_key))
    assert seen.json()["status"] == "settled"
    money = await totals(engine, gm)
    assert money[AccountKind.escrow_cash] == 100_000 - 30_000
    assert money[AccountKind.payout_in_transit] == 0
    # The same result again, then a contradicting one: nothing moves; the contradiction is flagged.
    again = gm.signed(result)
    await client.post(f"/v1/banks/{gm.slug}/notify", content=again[0], headers=again[1])
    failed = gm.signed({**result, "msgId": f"R{uuid.uuid4().hex[:20]}", "status": "FAIL"})
    await client.post(f"/v1/banks/{gm.slug}/notify", content=failed[0], headers=failed[1])
    assert (await totals(engine, gm))[AccountKind.escrow_cash] == 70_000
    assert (
        await Database(engine).run(
            lambda s: s.scalar(select(Payout.status).where(Payout.id == uuid.UUID(payout["id"])))
        )
        == "settled"
    )
    kinds = await Database(engine).run(
        lambda s: s.scalars(
            select(Alert.kind).where(Alert.institution_id == gm.world.institution_id)
        )
    )
    assert list(kinds) == ["conflicting_result"]


async def test_a_body_above_one_mebibyte_is_refused(client, gm):
    reply = await client.post(
        f"/v1/banks/{gm.slug}/notify",
        content=b"{" + b" " * (1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert reply.status_code == 413
    assert reply.headers["content-type"].startswith("application/problem+json")


async def test_an_unknown_bank_is_404(client):
    reply = await client.post("/v1/banks/nosuchbank/notify", content=b"x")
    assert (reply.status_code, reply.json()["code"]) == (404, "bank_not_found")


async def run_job(client, gm: GmBank, job: str) -> int:
    reply = await client.post(f"/v1/admin/jobs/{job}", headers=auth(gm.world.admin_key), json={})
    assert reply.status_code == 200, reply.text
    return reply.json()["handled"]


async def stored(engine, gm: GmBank, message_id: str) -> BankMessage:
    return await Database(engine).run(
        lambda s: s.scalar(
            select(BankMessage).where(
                BankMessage.bank_slug == gm.slug, BankMessage.message_id == message_id
            )
        )
    )


async def test_a_crash_mid_apply_keeps_the_message_and_the_retry_credits_it_once(
    app, engine, client, gm, monkeypatch
):
    enrollment = await enrollment_awaiting_payment(client, gm)
    message = gm.credit(enrollment["order_no"], enrollment["amount_fen"])

    # The crash comes after the ledger entry is written, in the same transaction as the credit
    # (one payment's post, or a batch's).
    def then_crash(post):
        async def post_then_crash(*args, **kwargs):
            await post(*args, **kwargs)
            raise RuntimeError("the process died here")

        return post_then_crash

    monkeypatch.setattr(ledger, "post", then_crash(ledger.post))
    monkeypatch.setattr(ledger, "post_many", then_crash(ledger.post_many))
    monkeypatch.setattr(ledger, "post_many_read", then_crash(ledger.post_many_read))
    body, headers = gm.signed(message)
    reply = await client.post(f"/v1/banks/{gm.slug}/notify", content=body, headers=headers)

    # Durably ours, so the bank is told so; nothing of the half-done credit stayed.
    assert (reply.status_code, reply.json()["code"]) == (200, "0000")
    await settled(app)
    kept = await stored(engine, gm, message["msgId"])
    assert kept.status == "failed" and "the process died here" in kept.detail
    assert (await totals(engine, gm)).get(AccountKind.escrow_cash, 0) == 0
    view = await client.get(
        f"/v1/enrollments/{enrollment['id']}", headers=auth(gm.world.institution_key)
    )
    assert view.json()["status"] == "awaiting_payment"
    # The bank resends it: the same answer, nothing more.
    body, headers = gm.signed(message)
    again = await client.post(f"/v1/banks/{gm.slug}/notify", content=body, headers=headers)
    assert (again.status_code, again.json()["code"]) == (200, "0000")
    assert await count(engine, BankMessage, BankMessage.message_id == message["msgId"]) == 1

    monkeypatch.undo()
    assert await run_job(client, gm, "process_inbox") == 1
    assert await run_job(client, gm, "process_inbox") == 0

    assert (await stored(engine, gm, message["msgId"])).status == "processed"
    assert (await totals(engine, gm))[AccountKind.escrow_cash] == enrollment["amount_fen"]
    view = await client.get(
        f"/v1/enrollments/{enrollment['id']}", headers=auth(gm.world.institution_key)
    )
    assert (view.json()["status"], view.json()["paid_fen"]) == ("active", enrollment["amount_fen"])


async def test_money_for_an_account_nobody_holds_waits_until_its_institution_is_onboarded(
    app, engine, client, gm
):
    account_no = f"6222{uuid.uuid4().int % 10**15:015d}"
    message = {**gm.credit("PG-UNKNOWN-ORDER", 12_345), "acctNo": account_no}
    body, headers = gm.signed(message)
    reply = await client.post(f"/v1/banks/{gm.slug}/notify", content=body, headers=headers)
    assert (reply.status_code, reply.json()["code"]) == (200, "0000")
    await settled(app)
    kept = await stored(engine, gm, message["msgId"])
    assert kept.status == "failed" and account_no in kept.detail
    assert await run_job(client, gm, "process_inbox") == 0  # still nobody's

    school = await make_institution(
        engine, gm.world.jurisdiction_code, bank_slug=gm.slug, escrow_account_no=account_no
    )
    assert await run_job(client, gm, "process_inbox") == 1

    async with engine.connect() as connection:
        balances = await ledger.balances_by_kind(connection, school.id)
    assert (balances[AccountKind.escrow_cash], balances[AccountKind.suspense]) == (12_345, 12_345)
    assert (await stored(engine, gm, message["msgId"])).status == "processed"


async def test_the_operator_sees_failed_messages_and_retries_one_once_its_cause_is_fixed(
    app, engine, client, gm
):
    admin = auth(gm.world.admin_key)
    account_no = f"6222{uuid.uuid4().int % 10**15:015d}"
    message = {**gm.credit("PG-UNKNOWN-ORDER", 500), "acctNo": account_no}
    body, headers = gm.signed(message)
    await client.post(f"/v1/banks/{gm.slug}/notify", content=body, headers=headers)
    bad_body, bad_headers = gm.signed(gm.credit("PG-ANY", 100))
    signature = bad_headers["X-GM-Signature"]
    # Another first byte, whatever the signature's was (a fixed "00" would be no change 1 time in 256).
    bad_headers["X-GM-Signature"] = f"{(int(signature[:2], 16) + 1) % 256:02x}" + signature[2:]
    await client.post(f"/v1/banks/{gm.slug}/notify", content=bad_body, headers=bad_headers)
    await settled(app)

    listed = await client.get(f"/v1/banks/{gm.slug}/messages?status=failed", headers=admin)
    assert listed.status_code == 200, listed.text
    [failed] = listed.json()["items"]
    assert (failed["message_id"], failed["status"], failed["attempts"]) == (
        message["msgId"],
        "failed",
        1,
    )
    assert account_no in failed["detail"] and failed["body_bytes"] == len(body)
    everything = await client.get(f"/v1/banks/{gm.slug}/messages", headers=admin)
    assert [item["status"] for item in everything.json()["items"]] == ["failed", "rejected"]

    # Still nobody's account: the retry tries, and says why it failed again.
    retried = await client.post(f"/v1/banks/{gm.slug}/messages/{failed['id']}/retry", headers=admin)
    assert (retried.status_code, retried.json()["status"], retried.json()["attempts"]) == (
        200,
        "failed",
        2,
    )
    school = await make_institution(
        engine, gm.world.jurisdiction_code, bank_slug=gm.slug, escrow_account_no=account_no
    )
    retried = await client.post(f"/v1/banks/{gm.slug}/messages/{failed['id']}/retry", headers=admin)
    assert (retried.status_code, retried.json()["status"]) == (200, "processed")
    again = await client.post(f"/v1/banks/{gm.slug}/messages/{failed['id']}/retry", headers=admin)
    assert (again.status_code, again.json()["code"]) == (409, "bank_message_not_failed")
    async with engine.connect() as connection:
        balances = await ledger.balances_by_kind(connection, school.id)
    assert balances[AccountKind.suspense] == 500
    elsewhere = await client.post(
        f"/v1/banks/another-bank/messages/{failed['id']}/retry", headers=admin
    )
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (404, "bank_message_not_found")
    institution = auth(gm.world.institution_key)
    hidden = await client.get(f"/v1/banks/{gm.slug}/messages", headers=institution)
    assert hidden.status_code == 404
