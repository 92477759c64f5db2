"""Settling instructions (success debits, failure does not), the pushed results, and returns (退票)."""

import json
from typing import Any

import httpx
import pytest
from defusedxml.ElementTree import fromstring

from app.banks.gmbank.signing import check_headers
from app.banks.iso20022.signing import check_signature
from app.kit.clock import utcnow
from tests.bank_simulator.conftest import (
    GM,
    ISO,
    UMS,
    FakeService,
    Keys,
    balance,
    fund,
    gm_call,
    gm_query,
    gm_transfer,
    iso_call,
    pain001,
    ums_call,
    ums_payout,
)


def _text(body: bytes, path: str) -> str:
    found = fromstring(body).find(path)
    assert found is not None, path
    return found.text or ""


async def _settle(sim: httpx.AsyncClient, slug: str, **request: object) -> dict[str, Any]:
    response = await sim.post("/sim/settle", json={"slug": slug, **request})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_iso20022_success_debits_and_pushes_acsc(
    sim: httpx.AsyncClient, service: FakeService, keys: Keys
) -> None:
    await fund(sim, ISO, 10000)
    await iso_call(sim, keys, pain001("PAY1", "60.00"))
    settled = await _settle(sim, ISO, outcome="success")
    assert [i["status"] for i in settled["settled"]] == ["success"]

    account = await balance(sim, ISO)
    assert account["balance_fen"] == account["available_fen"] == 4000
    debit = account["transactions"][-1]
    assert debit["direction"] == "D"
    assert debit["amount_fen"] == 6000 and debit["balance_after_fen"] == 4000
    assert debit["reference"] == "PAY1"
    assert debit["counterparty_account"] == "3100000000000099"
    assert debit["counterparty_name"] == "某某培训学校"

    result = service.notifications(ISO)[-1]
    check_signature(result.headers["x-signature"], result.body, [keys.secret_to_service], utcnow())
    transaction = "{*}CstmrPmtStsRpt/{*}OrgnlPmtInfAndSts/{*}TxInfAndSts/"
    assert _text(result.body, transaction + "{*}OrgnlEndToEndId") == "PAY1"
    assert _text(result.body, transaction + "{*}TxSts") == "ACSC"
    # It quotes the pain.001 it answers.
    assert _text(result.body, "{*}CstmrPmtStsRpt/{*}OrgnlGrpInfAndSts/{*}OrgnlMsgId") == "MPAY1"
    info = "{*}CstmrPmtStsRpt/{*}OrgnlPmtInfAndSts/{*}OrgnlPmtInfId"
    assert _text(result.body, info) == "PPAY1"


async def test_iso20022_failure_debits_nothing_and_pushes_rjct_with_reason(
    sim: httpx.AsyncClient, service: FakeService, keys: Keys
) -> None:
    await fund(sim, ISO, 10000)
    await iso_call(sim, keys, pain001("PAY1", "60.00"))
    await _settle(sim, ISO, outcome="fail", fail_reason="AC04")
    account = await balance(sim, ISO)
    assert account["balance_fen"] == account["available_fen"] == 10000
    assert len(account["transactions"]) == 1
    result = service.notifications(ISO)[-1].body
    transaction = "{*}CstmrPmtStsRpt/{*}OrgnlPmtInfAndSts/{*}TxInfAndSts/"
    assert _text(result, transaction + "{*}TxSts") == "RJCT"
    assert _text(result, transaction + "{*}StsRsnInf/{*}Rsn/{*}Cd") == "AC04"


async def test_gmbank_results_are_signed_json(
    sim: httpx.AsyncClient, service: FakeService, keys: Keys
) -> None:
    paid = await fund(sim, GM, 10000)
    await gm_call(sim, keys, gm_transfer("PAY1", "30.00"))
    refund = gm_transfer("REF1", "20.00", kind="REFUND", orig_serial_no=paid["bank_reference"])
    await gm_call(sim, keys, refund)
    await _settle(sim, GM, outcome="success", instruction_ids=["PAY1"])
    await _settle(sim, GM, outcome="fail", instruction_ids=["REF1"], fail_reason="账户冻结")
    payout, refund = service.notifications(GM)[-2:]
    for received in (payout, refund):
        check_headers(
            received.headers, received.body, [keys.bank_sm2_public], keys.app_id, utcnow()
        )
    payout_result, refund_result = json.loads(payout.body), json.loads(refund.body)
    assert payout_result["msgType"] == "PAYOUT_RESULT"
    assert (payout_result["instrId"], payout_result["status"]) == ("PAY1", "SUCCESS")
    assert payout_result["amount"] == "30.00" and payout_result["failReason"] is None
    assert refund_result["msgType"] == "REFUND_RESULT"
    assert (refund_result["status"], refund_result["failReason"]) == ("FAIL", "账户冻结")
    assert (await balance(sim, GM))["balance_fen"] == 7000
    assert json.loads((await gm_query(sim, keys, "REF1")).content)["status"] == "FAIL"


async def test_settle_pushes_results_in_the_order_asked_and_in_copies(
    sim: httpx.AsyncClient, service: FakeService, keys: Keys
) -> None:
    await fund(sim, GM, 10000)
    for instruction_id in ("PAY1", "PAY2", "PAY3"):
        await gm_call(sim, keys, gm_transfer(instruction_id, "1.00"))
    await _settle(sim, GM, outcome="success", order="reversed", copies=2)
    pushed = [json.loads(r.body)["instrId"] for r in service.notifications(GM)[1:]]
    assert pushed == ["PAY3", "PAY3", "PAY2", "PAY2", "PAY1", "PAY1"]


async def test_held_results_wait_for_delivery(
    sim: httpx.AsyncClient, service: FakeService, keys: Keys
) -> None:
    await fund(sim, ISO, 10000)
    await iso_call(sim, keys, pain001("PAY1", "1.00"))
    settled = await _settle(sim, ISO, outcome="success", deliver="hold")
    (held,) = settled["messages"]
    assert held["deliveries"] == []
    assert len(service.notifications(ISO)) == 1  # only the funding payment
    # The money left when the bank executed, whenever the service hears of it.
    assert (await balance(sim, ISO))["balance_fen"] == 9900
    await sim.post("/sim/messages/deliver", json={"message_ids": [held["message_id"]]})
    assert b"ACSC" in service.notifications(ISO)[-1].body


async def test_settle_refuses_an_instruction_that_is_not_processing(
    sim: httpx.AsyncClient,
) -> None:
    response = await sim.post(
        "/sim/settle", json={"slug": GM, "outcome": "success", "instruction_ids": ["NOPE"]}
    )
    assert response.status_code == 409


@pytest.mark.parametrize("slug", [UMS, ISO, GM])
async def test_return_credits_the_money_back(
    sim: httpx.AsyncClient, service: FakeService, keys: Keys, slug: str
) -> None:
    await fund(sim, slug, 10000)
    if slug == UMS:
        await ums_call(sim, keys, "202002", ums_payout("PAY1", 6000))
    elif slug == ISO:
        await iso_call(sim, keys, pain001("PAY1", "60.00"))
    else:
        await gm_call(sim, keys, gm_transfer("PAY1", "60.00"))
    await _settle(sim, slug, outcome="success")
    response = await sim.post(
        "/sim/returns", json={"slug": slug, "instruction_id": "PAY1", "reason": "AC04"}
    )
    assert response.status_code == 200, response.text
    returned = response.json()
    assert returned["instruction"]["status"] == "returned"

    account = await balance(sim, slug)
    assert account["balance_fen"] == 10000
    credit = account["transactions"][-1]
    assert credit["direction"] == "C" and credit["amount_fen"] == 6000
    assert credit["reference"] == "PAY1"
    assert credit["memo"].startswith("RETURN")
    assert credit["bank_reference"] == returned["bank_reference"]

    pushed = service.notifications(slug)[-1]
    if slug == UMS:  # nothing pushed: the 202008 query shows it (see test_instructions)
        assert returned["message_id"] is None
    elif slug == ISO:
        entry = "{*}BkToCstmrDbtCdtNtfctn/{*}Ntfctn/{*}Ntry/"
        assert _text(pushed.body, entry + "{*}CdtDbtInd") == "CRDT"
        assert _text(pushed.body, entry + "{*}AcctSvcrRef") == returned["bank_reference"]
        details = entry + "{*}NtryDtls/{*}TxDtls/"
        assert _text(pushed.body, details + "{*}Refs/{*}EndToEndId") == "PAY1"
        assert _text(pushed.body, details + "{*}RtrInf/{*}Rsn/{*}Cd") == "AC04"
    else:
        message = json.loads(pushed.body)
        assert (message["msgType"], message["instrId"], message["amount"]) == (
            "RETURN",
            "PAY1",
            "60.00",
        )
        assert json.loads((await gm_query(sim, keys, "PAY1")).content)["status"] == "RETURNED"

    again = await sim.post("/sim/returns", json={"slug": slug, "instruction_id": "PAY1"})
    assert again.status_code == 409
