"""Instructions at the bank: each spec's answers (accepted, duplicate, not enough balance, bad
signature, unreadable), every answer signed by the bank, queries, and the behaviours the control
API queues (refuse, time out, 502, lost)."""

import asyncio
import json
from typing import Any

import httpx
import pytest

from app.banks.gmbank.signing import check_headers
from app.banks.iso20022.signing import check_signature
from app.banks.ums.signing import sign_payload, verify_payload
from app.kit.clock import utcnow
from tests.bank_simulator.conftest import (
    GM,
    ISO,
    UMS,
    Keys,
    balance,
    fund,
    gm_call,
    gm_headers,
    gm_query,
    gm_transfer,
    iso_call,
    pain001,
    ums_call,
    ums_payout,
)


async def _instructions(sim: httpx.AsyncClient, slug: str) -> dict[str, dict[str, object]]:
    return {i["id"]: i for i in (await sim.get(f"/sim/instructions/{slug}")).json()}


async def _behave(sim: httpx.AsyncClient, slug: str, next_: str, **more: object) -> None:
    response = await sim.post("/sim/behaviour", json={"slug": slug, "next": next_, **more})
    assert response.status_code == 200, response.text


def _gm_json(response: httpx.Response, keys: Keys) -> dict[str, Any]:
    """A gmbank answer, after checking the bank signed it."""
    check_headers(response.headers, response.content, [keys.bank_sm2_public], keys.app_id, utcnow())
    answer: dict[str, Any] = response.json()
    return answer


# --- ums ---


async def test_ums_payout_is_accepted_signed_and_held_against_the_balance(
    sim: httpx.AsyncClient, keys: Keys
) -> None:
    await fund(sim, UMS, 10000)
    answer = await ums_call(sim, keys, "202002", ums_payout("PAY1", 6000))
    assert answer["respCode"] == "99999999"
    assert answer["srcReqId"] == "PAY1"
    assert verify_payload(answer, [keys.bank_rsa_public])
    account = await balance(sim, UMS)
    # Processing: not yet debited, but it counts against what can still be paid out.
    assert (account["balance_fen"], account["available_fen"]) == (10000, 4000)
    instruction = (await _instructions(sim, UMS))["PAY1"]
    assert instruction["kind"] == "payout"
    assert instruction["status"] == "processing"
    assert instruction["amount_fen"] == 6000
    assert instruction["payee"] == {"account_no": "3100000000000099", "name": "某某培训学校"}

    duplicate = await ums_call(sim, keys, "202002", ums_payout("PAY1", 6000))
    assert duplicate["respCode"] == "FAN00017"
    assert (await _instructions(sim, UMS))["PAY1"]["submissions"] == 2

    too_much = await ums_call(sim, keys, "202002", ums_payout("PAY2", 4001))
    assert too_much["respCode"] == "FAN00004"
    assert verify_payload(too_much, [keys.bank_rsa_public])


async def test_ums_refuses_a_bad_signature_and_records_nothing(
    sim: httpx.AsyncClient, keys: Keys
) -> None:
    await fund(sim, UMS, 10000)
    answer = await ums_call(sim, keys, "202002", ums_payout("PAY1", 100), sign=False)
    assert answer["respCode"] == "FAN00002"
    assert verify_payload(answer, [keys.bank_rsa_public])
    assert await _instructions(sim, UMS) == {}


async def test_ums_query_follows_an_instruction_to_its_outcome(
    sim: httpx.AsyncClient, keys: Keys
) -> None:
    await fund(sim, UMS, 10000)
    unknown = await ums_call(sim, keys, "202008", {"srcReqId": "Q1", "origSrcReqId": "PAY1"})
    assert unknown["respCode"] == "FAN00012"
    await ums_call(sim, keys, "202002", ums_payout("PAY1", 2500))

    async def status() -> list[dict[str, str]]:
        answer = await ums_call(sim, keys, "202008", {"srcReqId": "Q2", "origSrcReqId": "PAY1"})
        assert answer["respCode"] == "99999999"
        assert verify_payload(answer, [keys.bank_rsa_public])
        order_set: list[dict[str, str]] = answer["orderSet"]
        return order_set

    assert await status() == [{"orderNo": "PAY1", "status": "1", "orderAmt": "2500"}]
    settled = await sim.post("/sim/settle", json={"slug": UMS, "outcome": "success"})
    assert settled.json()["messages"] == []  # ums pushes no result: it is pulled
    assert (await status())[0]["status"] == "2"
    await sim.post("/sim/returns", json={"slug": UMS, "instruction_id": "PAY1"})
    assert (await status())[0]["status"] == "5"


async def test_ums_refund_pays_back_the_original_payer(sim: httpx.AsyncClient, keys: Keys) -> None:
    paid = await sim.post(
        "/sim/payments",
        json={
            "slug": UMS,
            "account_no": "6200000000000001",
            "order_no": "ORD1",
            "amount_fen": 5000,
            "payer_name": "王五",
            "payer_account": "6222000011112222",
        },
    )
    refund = {
        "srcReqId": "REF1",
        "acctNo": "6200000000000001",
        "refundAmt": "5000",
        "origTargetOrderId": paid.json()["channel_order_id"],
        "origSeqId": paid.json()["bank_reference"],
        "memo": "退费",
    }
    answer = await ums_call(sim, keys, "202011", refund)
    assert answer["respCode"] == "99999999"
    instruction = (await _instructions(sim, UMS))["REF1"]
    assert instruction["kind"] == "refund"
    assert instruction["payee"] == {"account_no": "6222000011112222", "name": "王五"}


async def test_ums_refuses_an_amount_that_is_not_fen(sim: httpx.AsyncClient, keys: Keys) -> None:
    await fund(sim, UMS, 10000)
    fields = ums_payout("PAY1", 100) | {"payAmt": "1.00"}
    answer = await ums_call(sim, keys, "202002", fields)
    assert answer["respCode"] == "FAN00003"
    assert await _instructions(sim, UMS) == {}


# --- iso20022 ---


async def test_iso20022_answers_202_409_and_422(sim: httpx.AsyncClient, keys: Keys) -> None:
    await fund(sim, ISO, 10000)
    accepted = await iso_call(sim, keys, pain001("PAY1", "60.00"))
    assert accepted.status_code == 202
    check_signature(
        accepted.headers["x-signature"], accepted.content, [keys.secret_to_service], utcnow()
    )
    duplicate = await iso_call(sim, keys, pain001("PAY1", "60.00"))
    assert duplicate.status_code == 409
    too_much = await iso_call(sim, keys, pain001("PAY2", "40.01"))
    assert too_much.status_code == 422
    unreadable = await iso_call(sim, keys, pain001("PAY3", "1.001"))
    assert unreadable.status_code == 422
    instructions = await _instructions(sim, ISO)
    assert instructions["PAY1"]["status"] == "processing"
    assert instructions["PAY1"]["submissions"] == 2
    assert instructions["PAY1"]["amount_fen"] == 6000
    assert "PAY3" not in instructions


async def test_iso20022_refund_is_read_from_the_remittance(
    sim: httpx.AsyncClient, keys: Keys
) -> None:
    paid = await fund(sim, ISO, 10000)
    remittance = f"REFUND ORD1 {paid['bank_reference']}"
    accepted = await iso_call(sim, keys, pain001("REF1", "10", remittance=remittance))
    assert accepted.status_code == 202
    instruction = (await _instructions(sim, ISO))["REF1"]
    assert (instruction["kind"], instruction["original_reference"]) == (
        "refund",
        paid["bank_reference"],
    )


async def test_a_refund_quoting_no_payment_of_the_account_is_refused(
    sim: httpx.AsyncClient, keys: Keys
) -> None:
    """The bank pays a refund back against the payment it quotes; it cannot do so without one."""
    paid = await fund(sim, ISO, 10000)
    for remittance in ("REFUND ORD1", "REFUND ORD1 NOSUCHREFERENCE"):
        refused = await iso_call(sim, keys, pain001("REF1", "10", remittance=remittance))
        assert refused.status_code == 422, remittance
    too_much = pain001("REF2", "100.01", remittance=f"REFUND ORD1 {paid['bank_reference']}")
    assert (await iso_call(sim, keys, too_much)).status_code == 422
    gm_paid = await fund(sim, GM, 10000)
    assert (await gm_call(sim, keys, gm_transfer("REF3", "1.00", kind="REFUND"))).status_code == 400
    quoted = gm_transfer("REF4", "1.00", kind="REFUND", orig_serial_no=gm_paid["bank_reference"])
    assert json.loads((await gm_call(sim, keys, quoted)).content)["code"] == "0000"


async def test_an_iso20022_refund_without_cdtracct_goes_back_to_the_payer(
    sim: httpx.AsyncClient, keys: Keys
) -> None:
    paid = await fund(sim, ISO, 10000, payer_name="李四", payer_account="6222000011112222")
    body = pain001(
        "REF1", "10", remittance=f"REFUND ORD1 {paid['bank_reference']}", creditor_account=False
    )
    assert (await iso_call(sim, keys, body)).status_code == 202
    assert (await _instructions(sim, ISO))["REF1"]["payee"]["account_no"] == "6222000011112222"
    payout = pain001("PAY1", "10", creditor_account=False)
    assert (await iso_call(sim, keys, payout)).status_code == 422


async def test_iso20022_refuses_a_bad_signature_with_401(
    sim: httpx.AsyncClient, keys: Keys
) -> None:
    await fund(sim, ISO, 10000)
    response = await iso_call(sim, keys, pain001("PAY1", "1.00"), secret="wrong")
    assert response.status_code == 401
    unsigned = await sim.post(f"/banks/{ISO}/payments", content=pain001("PAY1", "1.00"))
    assert unsigned.status_code == 401
    assert await _instructions(sim, ISO) == {}


async def test_iso20022_refuses_entity_expansion(sim: httpx.AsyncClient, keys: Keys) -> None:
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Document><CstmrCdtTrfInitn>&lol2;</CstmrCdtTrfInitn></Document>"""
    response = await iso_call(sim, keys, bomb)
    assert response.status_code == 422


# --- gmbank ---


async def test_gmbank_transfer_answers_and_query(sim: httpx.AsyncClient, keys: Keys) -> None:
    await fund(sim, GM, 10000)
    accepted = _gm_json(await gm_call(sim, keys, gm_transfer("PAY1", "60.00")), keys)
    assert accepted["code"] == "0000" and accepted["acceptNo"]
    duplicate = _gm_json(await gm_call(sim, keys, gm_transfer("PAY1", "60.00")), keys)
    assert duplicate["code"] == "1001"
    too_much = _gm_json(await gm_call(sim, keys, gm_transfer("PAY2", "40.01")), keys)
    assert too_much == {"code": "2001", "msg": "insufficient balance"}

    found = await gm_query(sim, keys, "PAY1")
    assert found.status_code == 200
    assert _gm_json(found, keys)["status"] == "PROCESSING"
    missing = await gm_query(sim, keys, "NOPE")
    assert missing.status_code == 404
    assert _gm_json(missing, keys) == {"code": "1004", "msg": "not found"}


async def test_gmbank_refuses_bad_signatures_and_replayed_nonces(
    sim: httpx.AsyncClient, keys: Keys
) -> None:
    await fund(sim, GM, 10000)
    body = gm_transfer("PAY1", "1.00")
    headers = {"Content-Type": "application/json", **gm_headers(keys, body)}
    tampered = body.replace(b"1.00", b"9.00")
    bad = await sim.post(f"/banks/{GM}/api/v1/transfer", content=tampered, headers=headers)
    assert bad.status_code == 401
    assert _gm_json(bad, keys)["code"] == "9001"
    assert await _instructions(sim, GM) == {}

    first = await gm_call(sim, keys, body, nonce="N" * 20)
    assert first.status_code == 200
    replayed = await gm_call(sim, keys, gm_transfer("PAY2", "1.00"), nonce="N" * 20)
    assert replayed.status_code == 401
    assert _gm_json(replayed, keys)["code"] == "9001"
    assert set(await _instructions(sim, GM)) == {"PAY1"}


async def test_gmbank_refuses_an_unreadable_transfer(sim: httpx.AsyncClient, keys: Keys) -> None:
    response = await gm_call(sim, keys, gm_transfer("PAY1", "1.005"))
    assert response.status_code == 400
    assert _gm_json(response, keys)["code"] == "9002"


# --- behaviours ---


async def test_refuse_and_insufficient_answer_the_next_submission_only(
    sim: httpx.AsyncClient, keys: Keys
) -> None:
    await fund(sim, GM, 10000)
    await _behave(sim, GM, "refuse")
    await _behave(sim, GM, "insufficient")
    refused = _gm_json(await gm_call(sim, keys, gm_transfer("PAY1", "1.00")), keys)
    assert refused["code"] not in ("0000", "1001")
    insufficient = _gm_json(await gm_call(sim, keys, gm_transfer("PAY1", "1.00")), keys)
    assert insufficient["code"] == "2001"
    # A refused id is looked at anew when sent again, and now it goes through.
    accepted = _gm_json(await gm_call(sim, keys, gm_transfer("PAY1", "1.00")), keys)
    assert accepted["code"] == "0000"
    assert (await _instructions(sim, GM))["PAY1"]["submissions"] == 3


async def test_refuse_with_ums_and_iso20022(sim: httpx.AsyncClient, keys: Keys) -> None:
    await fund(sim, UMS, 10000)
    await fund(sim, ISO, 10000)
    await _behave(sim, UMS, "refuse")
    await _behave(sim, ISO, "insufficient")
    assert (await ums_call(sim, keys, "202002", ums_payout("PAY1", 1)))["respCode"] == "FAN00003"
    assert (await iso_call(sim, keys, pain001("PAY1", "0.01"))).status_code == 422


@pytest.mark.parametrize("slug", [UMS, ISO, GM])
async def test_execute_then_502_records_the_instruction(
    sim: httpx.AsyncClient, keys: Keys, slug: str
) -> None:
    await fund(sim, slug, 10000)
    await _behave(sim, slug, "execute_then_502")
    if slug == UMS:
        response = await sim.post(
            f"/banks/{UMS}/channel/Business/UnifyMulti/202002",
            content=_signed_ums(keys, ums_payout("PAY1", 100)),
        )
    elif slug == ISO:
        response = await iso_call(sim, keys, pain001("PAY1", "1.00"))
    else:
        response = await gm_call(sim, keys, gm_transfer("PAY1", "1.00"))
    assert response.status_code == 502
    assert (await _instructions(sim, slug))["PAY1"]["status"] == "processing"
    if slug == GM:
        assert _gm_json(await gm_query(sim, keys, "PAY1"), keys)["status"] == "PROCESSING"
    if slug == ISO:  # no query at this bank: a resend is the question, and it is a duplicate
        assert (await iso_call(sim, keys, pain001("PAY1", "1.00"))).status_code == 409


@pytest.mark.parametrize("slug", [UMS, GM])
async def test_drop_before_execute_answers_502_and_forgets(
    sim: httpx.AsyncClient, keys: Keys, slug: str
) -> None:
    await fund(sim, slug, 10000)
    await _behave(sim, slug, "drop_before_execute")
    if slug == UMS:
        response = await sim.post(
            f"/banks/{UMS}/channel/Business/UnifyMulti/202002",
            content=_signed_ums(keys, ums_payout("PAY1", 100)),
        )
        assert response.status_code == 502
        query = await ums_call(sim, keys, "202008", {"srcReqId": "Q1", "origSrcReqId": "PAY1"})
        assert query["respCode"] == "FAN00012"
        # Resent with the same id, as the spec says: now it is accepted.
        resent = await ums_call(sim, keys, "202002", ums_payout("PAY1", 100))
        assert resent["respCode"] == "99999999"
    else:
        response = await gm_call(sim, keys, gm_transfer("PAY1", "1.00"))
        assert response.status_code == 502
        assert (await gm_query(sim, keys, "PAY1")).status_code == 404
    assert (await balance(sim, slug))["available_fen"] == 10000 - (100 if slug == UMS else 0)


async def test_execute_then_timeout_hangs_after_recording(
    sim: httpx.AsyncClient, keys: Keys
) -> None:
    await fund(sim, GM, 10000)
    await _behave(sim, GM, "execute_then_timeout", hang_seconds=0.5)
    body = gm_transfer("PAY1", "1.00")
    headers = {"Content-Type": "application/json", **gm_headers(keys, body)}
    # The in-process transport has no timeouts of its own; the client gives up as a real one would.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await sim.post(f"/banks/{GM}/api/v1/transfer", content=body, headers=headers)
    assert (await _instructions(sim, GM))["PAY1"]["status"] == "processing"
    assert _gm_json(await gm_query(sim, keys, "PAY1"), keys)["status"] == "PROCESSING"


async def test_behaviour_for_an_unknown_bank_is_404(sim: httpx.AsyncClient) -> None:
    response = await sim.post("/sim/behaviour", json={"slug": "nope", "next": "refuse"})
    assert response.status_code == 404


def _signed_ums(keys: Keys, fields: dict[str, str]) -> bytes:
    payload: dict[str, str] = {"transCode": "202002", "verNo": "100", **fields}
    payload["signature"] = sign_payload(payload, keys.service_rsa_private)
    return json.dumps(payload, ensure_ascii=False).encode()
