"""Payment notifications: each bank's message arrives at the service signed as its spec says, with
the credit booked at the bank; copies, holds, ordering and resends behave as a real bank's do."""

import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from defusedxml.ElementTree import fromstring

from app.banks.gmbank.signing import check_headers
from app.banks.iso20022.signing import check_signature
from app.banks.protocol import VerificationFailed
from app.banks.ums.signing import notify_signature
from app.kit.clock import utcnow
from bank_simulator.app import create_simulator
from bank_simulator.config import SimulatorConfig
from tests.bank_simulator.conftest import (
    ACCOUNT,
    GM,
    ISO,
    UMS,
    FakeService,
    Keys,
    balance,
    bank_configs,
)


def _xml_text(body: bytes, path: str) -> str:
    found = fromstring(body).find(path)
    assert found is not None, path
    return found.text or ""


async def _pay(sim: httpx.AsyncClient, slug: str, **more: object) -> dict[str, Any]:
    request = {
        "slug": slug,
        "account_no": ACCOUNT,
        "order_no": "ORD20261128A",
        "amount_fen": 123450,
    }
    response = await sim.post("/sim/payments", json={**request, **more})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_ums_payment_is_a_signed_form_and_credits_the_account(
    sim: httpx.AsyncClient, service: FakeService, keys: Keys
) -> None:
    paid = await _pay(sim, UMS, payer_name="李四")
    (received,) = service.notifications(UMS)
    assert received.headers["content-type"] == "application/x-www-form-urlencoded"
    fields = dict(parse_qsl(received.body.decode(), keep_blank_values=True))
    assert fields["sign"] == notify_signature(fields, keys.md5_key, "SHA256")
    assert fields["signType"] == "SHA256"
    assert fields["merOrderId"] == "ORD20261128A"
    assert fields["totalAmount"] == "123450"
    assert fields["status"] == "TRADE_SUCCESS"
    assert fields["seqId"] == paid["bank_reference"]
    assert fields["notifyId"] == paid["message_id"]
    assert fields["acctNo"] == ACCOUNT
    assert (fields["mid"], fields["tid"]) == ("898310000000001", "00000001")
    assert fields["targetOrderId"] and fields["payTime"] and fields["settleDate"]
    assert paid["deliveries"] == [
        {
            "status_code": 200,
            "body": "SUCCESS",
            "acknowledged": True,
            "attempts": [{"status_code": 200, "body": "SUCCESS"}],
        }
    ]
    account = await balance(sim, UMS)
    assert account["balance_fen"] == 123450
    (line,) = account["transactions"]
    assert line["direction"] == "C"
    assert line["amount_fen"] == line["balance_after_fen"] == 123450
    assert line["reference"] == "ORD20261128A"
    assert line["bank_reference"] == paid["bank_reference"]
    assert line["counterparty_name"] == "李四"


async def test_iso20022_payment_is_a_signed_camt054(
    sim: httpx.AsyncClient, service: FakeService, keys: Keys
) -> None:
    paid = await _pay(sim, ISO)
    (received,) = service.notifications(ISO)
    assert received.headers["content-type"] == "application/xml"
    check_signature(
        received.headers["x-signature"], received.body, [keys.secret_to_service], utcnow()
    )
    body = received.body
    base = "{*}BkToCstmrDbtCdtNtfctn/"
    assert _xml_text(body, base + "{*}GrpHdr/{*}MsgId") == paid["message_id"]
    notification = base + "{*}Ntfctn/"
    assert _xml_text(body, notification + "{*}Acct/{*}Id/{*}Othr/{*}Id") == ACCOUNT
    entry = notification + "{*}Ntry/"
    amount = fromstring(body).find(entry + "{*}Amt")
    assert amount is not None and amount.text == "1234.50" and amount.get("Ccy") == "CNY"
    assert _xml_text(body, entry + "{*}CdtDbtInd") == "CRDT"
    assert _xml_text(body, entry + "{*}Sts/{*}Cd") == "BOOK"
    assert _xml_text(body, entry + "{*}AcctSvcrRef") == paid["bank_reference"]
    refs = entry + "{*}NtryDtls/{*}TxDtls/{*}Refs/{*}EndToEndId"
    assert _xml_text(body, refs) == "ORD20261128A"
    assert _xml_text(body, entry + "{*}BookgDt/{*}DtTm").endswith("+08:00")
    assert (await balance(sim, ISO))["balance_fen"] == 123450


async def test_gmbank_payment_is_signed_json(
    sim: httpx.AsyncClient, service: FakeService, keys: Keys
) -> None:
    paid = await _pay(sim, GM, payer_name="张三丰", payer_account="6222020200001234")
    (received,) = service.notifications(GM)
    nonce = check_headers(
        received.headers, received.body, [keys.bank_sm2_public], keys.app_id, utcnow()
    )
    assert 16 <= len(nonce) <= 32
    message = json.loads(received.body)
    assert message == {
        "currency": "CNY",
        "msgId": paid["message_id"],
        "msgType": "CREDIT",
        "acctNo": ACCOUNT,
        "serialNo": paid["bank_reference"],
        "amount": "1234.50",
        "orderNo": "ORD20261128A",
        "instrId": None,
        "status": "SUCCESS",
        "failReason": None,
        "txnTime": message["txnTime"],
        "payerName": "张**",
        "payerAcct": "6222********1234",
    }
    assert len(message["txnTime"]) == 14
    assert (await balance(sim, GM))["balance_fen"] == 123450


async def test_ums_md5_notifications_are_signed_with_md5(keys: Keys, service: FakeService) -> None:
    config = SimulatorConfig.model_validate(
        {"service_url": "http://service", "banks": bank_configs(keys, ums_sign_type="MD5")}
    )
    app = create_simulator(config, transport=httpx.ASGITransport(app=service.app()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        await c.post("/sim/accounts", json={"slug": UMS, "account_no": ACCOUNT})
        await _pay(c, UMS)
    fields = dict(parse_qsl(service.notifications(UMS)[0].body.decode()))
    assert fields["signType"] == "MD5"
    assert fields["sign"] == notify_signature(fields, keys.md5_key, "MD5")
    assert len(fields["sign"]) == 32


@pytest.mark.parametrize(("slug", "status"), [(UMS, "TRADE_CLOSED"), (ISO, "PDNG"), (GM, "FAIL")])
async def test_a_status_other_than_success_is_notified_but_books_nothing(
    sim: httpx.AsyncClient, service: FakeService, slug: str, status: str
) -> None:
    paid = await _pay(sim, slug, status=status)
    assert paid["booked"] is False
    assert status.encode() in service.notifications(slug)[0].body
    assert (await balance(sim, slug))["transactions"] == []


@pytest.mark.parametrize(("slug", "text"), [(UMS, "123.45"), (ISO, "1234.505"), (GM, "1e3")])
async def test_amount_text_sends_a_malformed_amount_as_is(
    sim: httpx.AsyncClient, service: FakeService, keys: Keys, slug: str, text: str
) -> None:
    await _pay(sim, slug, amount_text=text)
    (received,) = service.notifications(slug)
    assert text.encode() in received.body
    if slug == GM:  # still correctly signed: only the amount is wrong
        check_headers(
            received.headers, received.body, [keys.bank_sm2_public], keys.app_id, utcnow()
        )


@pytest.mark.parametrize("slug", [UMS, ISO, GM])
async def test_copies_arrive_at_once_and_are_the_same_message(
    sim: httpx.AsyncClient, service: FakeService, slug: str
) -> None:
    paid = await _pay(sim, slug, copies=3)
    received = service.notifications(slug)
    assert len(received) == 3
    assert len({r.body for r in received}) == 1
    assert len(paid["deliveries"]) == 3
    # One credit at the bank, however many copies of its notice.
    assert (await balance(sim, slug))["balance_fen"] == 123450
    if slug == GM:  # fresh nonce on every attempt
        assert len({r.headers["x-gm-nonce"] for r in received}) == 3


async def test_held_messages_are_delivered_later_in_the_order_asked(
    sim: httpx.AsyncClient, service: FakeService
) -> None:
    first = await _pay(sim, ISO, order_no="FIRST", deliver="hold")
    second = await _pay(sim, ISO, order_no="SECOND", deliver="hold")
    assert first["deliveries"] == [] and service.received == []
    listed = {m["id"]: m for m in (await sim.get("/sim/messages")).json()}
    assert listed[str(first["message_id"])]["delivered"] is False
    assert listed[str(first["message_id"])]["kind"] == "payment"
    # The credit is booked when the money arrives, whenever the bank gets round to telling.
    assert (await balance(sim, ISO))["balance_fen"] == 2 * 123450

    response = await sim.post(
        "/sim/messages/deliver",
        json={"message_ids": [second["message_id"], first["message_id"]]},
    )
    assert response.status_code == 200
    order = [b"SECOND" in r.body for r in service.notifications(ISO)]
    assert order == [True, False]
    listed = {m["id"]: m for m in (await sim.get("/sim/messages")).json()}
    assert listed[str(first["message_id"])]["delivered"] is True

    # A delivered message can be delivered again: a late resend, same message id.
    await sim.post("/sim/messages/deliver", json={"message_ids": [first["message_id"]]})
    assert service.notifications(ISO)[-1].body == service.notifications(ISO)[1].body


async def test_delivering_an_unknown_message_is_404(sim: httpx.AsyncClient) -> None:
    response = await sim.post("/sim/messages/deliver", json={"message_ids": ["nope"]})
    assert response.status_code == 404


@pytest.mark.parametrize("slug", [UMS, ISO, GM])
async def test_resends_until_the_service_answers_success(
    sim: httpx.AsyncClient, service: FakeService, keys: Keys, slug: str
) -> None:
    service.fail_next = 2
    paid = await _pay(sim, slug)
    (delivery,) = paid["deliveries"]
    assert [a["status_code"] for a in delivery["attempts"]] == [503, 503, 200]
    assert delivery["acknowledged"] is True
    received = service.notifications(slug)
    assert len(received) == 3 and len({r.body for r in received}) == 1
    if slug == ISO:  # a fresh signature per attempt, each valid
        for r in received:
            check_signature(r.headers["x-signature"], r.body, [keys.secret_to_service], utcnow())
    if slug == UMS:  # the form carries its signature: every resend is byte for byte the same
        assert len({r.body for r in received}) == 1


async def test_gives_up_after_the_retries(sim: httpx.AsyncClient, service: FakeService) -> None:
    service.fail_next = 10
    paid = await _pay(sim, GM)
    (delivery,) = paid["deliveries"]
    assert len(delivery["attempts"]) == 4  # the first and three retries
    assert delivery["acknowledged"] is False
    (message,) = (await sim.get("/sim/messages")).json()
    assert message["delivered"] is False


async def test_a_gmbank_signature_is_refused_once_stale(
    sim: httpx.AsyncClient, service: FakeService, keys: Keys
) -> None:
    await _pay(sim, GM)
    (received,) = service.notifications(GM)
    with pytest.raises(VerificationFailed):
        check_headers(
            received.headers,
            received.body,
            [keys.bank_sm2_public],
            keys.app_id,
            utcnow() + timedelta(minutes=6),
        )


async def test_payment_to_an_unknown_account_or_bank_is_404(sim: httpx.AsyncClient) -> None:
    unknown_account = await sim.post(
        "/sim/payments",
        json={"slug": UMS, "account_no": "nope", "order_no": "X", "amount_fen": 1},
    )
    unknown_bank = await sim.post(
        "/sim/payments",
        json={"slug": "nope", "account_no": ACCOUNT, "order_no": "X", "amount_fen": 1},
    )
    assert (unknown_account.status_code, unknown_bank.status_code) == (404, 404)
