"""Bank messages that are not money, and money that leaves without us: a signed payment of no money
is malformed (400, stored `malformed`, never retried); money booked out of an escrow account that is
none of our instructions raises a red alert pointing at the raw message, whichever bank says so
(iso20022 a camt.054 `DBIT` `BOOK` entry, ums `TRADE_REFUND`, gmbank a settled result)."""

import uuid

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.banks import registry
from app.banks.protocol import InboundRequest, MalformedMessage, PaymentReceived
from app.kit.clock import SHANGHAI, utcnow
from app.kit.money import yuan
from app.ledger.types import AccountKind
from bank_simulator.config import SimBank
from bank_simulator.keys import bank_keys
from bank_simulator.messages import DIALECTS
from bank_simulator.messages.base import Outgoing
from bank_simulator.state import Payment
from tests.banks.test_binding import pending_payout
from tests.banks.voices import ADAPTERS, Voice, alerts, configured_bank, messages
from tests.factories import auth

NO_MONEY = {
    "ums": ["0", "-100"],
    "iso20022": ["0.00", "0", "-1.00"],
    "gmbank": ["0.00", "0", "-1.00"],
}


def assert_malformed(reply: httpx.Response, adapter: str) -> None:
    assert reply.status_code == 400, reply.text
    if adapter == "gmbank":
        assert reply.json()["code"] == "9002"
    else:
        assert reply.content == {"ums": b"FAILED", "iso20022": b""}[adapter]


@pytest.mark.parametrize(
    ("adapter", "amount"), [(a, amount) for a, amounts in NO_MONEY.items() for amount in amounts]
)
async def test_a_signed_payment_of_no_money_is_malformed_and_not_retried(
    engine, client, adapter, amount
):
    bank = await configured_bank(engine, client, adapter)
    enrollment = await bank.enrollment(client)
    message = bank.credit(
        bank.world.escrow_account_no, enrollment["order_no"], 0, amount_text=amount
    )

    assert_malformed(await bank.send(client, message), adapter)

    [stored] = await messages(engine, bank.slug)
    assert (stored.status, stored.message_id, stored.body) == ("malformed", None, message.body)
    job = await client.post("/v1/admin/jobs/process_inbox", headers=bank.admin, json={})
    assert job.json()["handled"] == 0
    seen = await client.get(f"/v1/enrollments/{enrollment['id']}", headers=bank.institution)
    assert seen.json()["status"] == "awaiting_payment"
    assert (await bank.balances(engine)).get(AccountKind.escrow_cash, 0) == 0


_SIMULATED = {adapter: bank_keys(adapter).simulator_config for adapter in ADAPTERS}


@pytest.mark.parametrize("adapter", ADAPTERS)
@settings(max_examples=40, deadline=None)
@given(amount_fen=st.integers(min_value=0, max_value=10**13))
def test_a_notified_amount_is_money_to_the_fen(adapter: str, amount_fen: int) -> None:
    """Whatever the amount, a bank's notification of it reads as exactly that many fen, or, for
    no money at all, as a malformed message."""
    sim = SimBank(slug="b", adapter=adapter, **_SIMULATED[adapter])
    dialect = DIALECTS[adapter]
    payment = Payment("b", "6222000000000001", "PGORDER1", amount_fen, "R1", "C1", "张三", "6222")
    outgoing = dialect.payment(
        sim,
        message_id="M1",
        payment=payment,
        status=dialect.payment_success_status,
        amount_text=dialect.amount_text(amount_fen),
        at=utcnow(),
    )
    request = InboundRequest({}, outgoing.body, utcnow())
    if amount_fen == 0:
        with pytest.raises(MalformedMessage):
            registry.ADAPTERS[adapter].parse_notification(request)
        return
    [event] = registry.ADAPTERS[adapter].parse_notification(request).events
    assert isinstance(event, PaymentReceived) and event.amount_fen == amount_fen


def camt054_debit(account_no: str, amount_fen: int, end_to_end_id: str) -> Outgoing:
    """A booked DBIT entry, as an iso20022 bank notifies money that left the account."""
    now = utcnow().astimezone(SHANGHAI).isoformat(timespec="seconds")
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">
  <BkToCstmrDbtCdtNtfctn>
    <GrpHdr><MsgId>D{uuid.uuid4().hex[:20]}</MsgId><CreDtTm>{now}</CreDtTm></GrpHdr>
    <Ntfctn>
      <Id>N1</Id><CreDtTm>{now}</CreDtTm>
      <Acct><Id><Othr><Id>{account_no}</Id></Othr></Id></Acct>
      <Ntry>
        <Amt Ccy="CNY">{yuan(amount_fen)}</Amt><CdtDbtInd>DBIT</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts><BookgDt><DtTm>{now}</DtTm></BookgDt>
        <AcctSvcrRef>CNAPS{uuid.uuid4().hex[:16]}</AcctSvcrRef>
        <NtryDtls><TxDtls><Refs><EndToEndId>{end_to_end_id}</EndToEndId></Refs></TxDtls></NtryDtls>
      </Ntry>
    </Ntfctn>
  </BkToCstmrDbtCdtNtfctn>
</Document>""".encode()
    return Outgoing(body, "application/xml")


async def money_out(
    engine, client: httpx.AsyncClient, bank: Voice, instructed: bool
) -> tuple[Outgoing, int]:
    """The bank's message that money left the escrow account: for one of our instructions, or for
    none (an id we never sent, an order nothing refunded). Also what the escrow cash should be."""
    account = bank.world.escrow_account_no
    if bank.adapter == "ums":
        enrollment = await bank.enrollment(client)
        paid = bank.credit(account, enrollment["order_no"], enrollment["amount_fen"])
        assert (await bank.send(client, paid)).status_code == 200
        if instructed:
            refund = await client.post(
                f"/v1/enrollments/{enrollment['id']}/refunds",
                headers=auth(enrollment["parent_key"]),
                json={"reason": "moving away"},
            )
            approved = await client.post(
                f"/v1/refunds/{refund.json()['id']}/approve", headers=bank.institution
            )
            assert approved.status_code == 200, approved.text
        message = bank.credit(
            account, enrollment["order_no"], enrollment["amount_fen"], status="TRADE_REFUND"
        )
        return message, enrollment["amount_fen"]
    payout = await pending_payout(engine, client, bank)
    instruction_id = payout["instruction_id"] if instructed else f"PO{uuid.uuid4().hex[:30]}"
    if bank.adapter == "iso20022":
        return camt054_debit(account, 30_000, instruction_id), 100_000
    settled = bank.result(instruction_id, account, 30_000, settled=True)
    return settled, 70_000 if instructed else 100_000


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_money_booked_out_without_an_instruction_raises_a_red_alert_with_the_raw_message(
    engine, client, adapter
):
    bank = await configured_bank(engine, client, adapter)
    message, escrow_cash = await money_out(engine, client, bank, instructed=False)

    for _ in range(2):  # recorded and acknowledged; a resend raises nothing more
        assert (await bank.send(client, message)).status_code == 200

    [stored] = [m for m in await messages(engine, bank.slug) if m.body == message.body]
    assert stored.status == "processed"
    [alert] = await alerts(engine, bank.world.institution_id)
    assert (alert.kind, alert.level, alert.bank_message_id) == (
        "unauthorized_debit",
        "RED",
        stored.id,
    )
    assert "without an instruction" in alert.reason
    assert (await bank.balances(engine))[AccountKind.escrow_cash] == escrow_cash


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_money_booked_out_for_our_own_instruction_raises_nothing(engine, client, adapter):
    bank = await configured_bank(engine, client, adapter)
    message, escrow_cash = await money_out(engine, client, bank, instructed=True)

    assert (await bank.send(client, message)).status_code == 200

    assert await alerts(engine, bank.world.institution_id) == []
    assert (await bank.balances(engine))[AccountKind.escrow_cash] == escrow_cash


async def test_a_debit_of_another_amount_than_our_instruction_is_not_ours(engine, client):
    bank = await configured_bank(engine, client, "iso20022")
    payout = await pending_payout(engine, client, bank)
    message = camt054_debit(bank.world.escrow_account_no, 30_001, payout["instruction_id"])
    assert (await bank.send(client, message)).status_code == 200
    [alert] = await alerts(engine, bank.world.institution_id)
    assert (alert.kind, alert.level) == ("unauthorized_debit", "RED")
