"""Payouts, refunds and queries as the bank receives them, and the bank's answers as we read them."""

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from app.banks.protocol import (
    BankResponse,
    OutboundInstruction,
    OutboundRequest,
    QueryAnswer,
    QueryStatus,
    SubmitAnswer,
    SubmitStatus,
)
from app.banks.ums import ADAPTER, UmsConfig
from app.banks.ums.signing import signing_string, verify_payload
from app.models.instruction import InstructionKind
from tests.banks.ums.bank_side import golden_json, response, signed_body
from tests.banks.ums.conftest import GROUP_ID, KeyPair

# 00:30:05 on 2 March in Shanghai: the date the bank sees is Shanghai's, not UTC's.
NOW = datetime(2024, 3, 1, 16, 30, 5, tzinfo=UTC)

PAYOUT = OutboundInstruction(
    id="PO2024030100000001",
    kind=InstructionKind.payout,
    amount_fen=1280000,
    escrow_account_no="6222020200112233445",
    payee_account_no="110060149018800012345",
    payee_name="北京小音符艺术培训有限公司",
    memo="释放 2024-03 课消",
    created_at=datetime(2024, 3, 1, 8, 0, tzinfo=UTC),
)
REFUND = OutboundInstruction(
    id="RF2024030100000007",
    kind=InstructionKind.refund,
    amount_fen=560000,
    escrow_account_no="6222020200112233445",
    payee_account_no="6217000010001234567",
    payee_name="张三",
    memo="退费 PG20240301A0001",
    created_at=datetime(2024, 3, 1, 8, 0, tzinfo=UTC),
    order_no="PG20240301A0001",
    payment_reference="24030110153000012345",
    payment_channel_order_id="4200002158202403011234567890",
)
COMMON = {
    "verNo": "100",
    "srcReqDate": "20240302",
    "srcReqTime": "003005",
    "channelId": "043",
    "groupId": GROUP_ID,
}


def _sent(request: OutboundRequest, our_key: KeyPair) -> dict[str, Any]:
    """The request as the bank reads it, after checking it is compact JSON signed with our key."""
    assert request.method == "POST"
    assert request.headers == {"Content-Type": "application/json"}
    payload: dict[str, Any] = json.loads(request.body.decode("utf-8"))
    assert request.body == json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    assert all(isinstance(value, str) for value in payload.values())
    assert verify_payload(payload, [our_key.public_pem])
    return payload


def test_payout_request(config: UmsConfig, our_key: KeyPair) -> None:
    request = ADAPTER.submit_request(config, PAYOUT, NOW)
    assert request.path == "/channel/Business/UnifyMulti/202002"
    payload = _sent(request, our_key)
    signature = payload.pop("signature")
    assert payload == {
        **COMMON,
        "transCode": "202002",
        "srcReqId": "PO2024030100000001",
        "acctNo": "6222020200112233445",
        "payAmt": "1280000",
        "targetAcctNo": "110060149018800012345",
        "targetAcctName": "北京小音符艺术培训有限公司",
        "memo": "释放 2024-03 课消",
    }
    assert signature
    # Non-ASCII goes on the wire as UTF-8, not as \\u escapes.
    assert "北京小音符".encode() in request.body
    # The exact string the bank verifies: sorted keys, raw values.
    assert (
        signing_string(payload)
        == (
            "acctNo=6222020200112233445&channelId=043&groupId=G00042&memo=释放 2024-03 课消"
            "&payAmt=1280000&srcReqDate=20240302&srcReqId=PO2024030100000001&srcReqTime=003005"
            "&targetAcctName=北京小音符艺术培训有限公司&targetAcctNo=110060149018800012345"
            "&transCode=202002&verNo=100"
        ).encode()
    )


def test_refund_request(config: UmsConfig, our_key: KeyPair) -> None:
    request = ADAPTER.submit_request(config, REFUND, NOW)
    assert request.path == "/channel/Business/UnifyMulti/202011"
    payload = _sent(request, our_key)
    del payload["signature"]
    assert payload == {
        **COMMON,
        "transCode": "202011",
        "srcReqId": "RF2024030100000007",
        "acctNo": "6222020200112233445",
        "refundAmt": "560000",
        "origTargetOrderId": "4200002158202403011234567890",
        "origSeqId": "24030110153000012345",
        "memo": "退费 PG20240301A0001",
    }


def test_a_request_altered_on_the_way_fails_the_banks_check(
    config: UmsConfig, our_key: KeyPair, stranger_key: KeyPair
) -> None:
    payload = json.loads(ADAPTER.submit_request(config, PAYOUT, NOW).body)
    assert not verify_payload({**payload, "payAmt": "1280001"}, [our_key.public_pem])
    assert not verify_payload({**payload, "targetAcctNo": "1"}, [our_key.public_pem])
    assert not verify_payload(payload, [stranger_key.public_pem])


def test_a_refund_without_the_original_route_is_not_sent(config: UmsConfig) -> None:
    for instruction in (
        replace(REFUND, payment_reference=None),
        replace(REFUND, payment_channel_order_id=""),
    ):
        with pytest.raises(ValueError):
            ADAPTER.submit_request(config, instruction, NOW)


def test_query_request(config: UmsConfig, our_key: KeyPair) -> None:
    request = ADAPTER.query_request(config, PAYOUT, NOW)
    assert request.path == "/channel/Business/UnifyMulti/202008"
    payload = _sent(request, our_key)
    del payload["signature"]
    query_id = payload.pop("srcReqId")
    assert payload == {**COMMON, "transCode": "202008", "origSrcReqId": "PO2024030100000001"}
    # The query is a request of its own: srcReqId is unique forever, so it is not the payout's.
    assert re.fullmatch(r"[0-9a-f]{32}", query_id)
    again = json.loads(ADAPTER.query_request(config, PAYOUT, NOW).body)
    assert again["srcReqId"] != query_id


# --- Answers -------------------------------------------------------------------------------------


def _answer(payload: dict[str, Any], key: KeyPair, status_code: int = 200) -> BankResponse:
    return response(signed_body(payload, key.private_pem), status_code)


@pytest.mark.parametrize(
    "code, status",
    [
        ("99999999", SubmitStatus.accepted),
        ("FAN00017", SubmitStatus.duplicate),
        ("00210003", SubmitStatus.unclear),
        ("FAN00004", SubmitStatus.refused),
        ("FAN00002", SubmitStatus.refused),
        ("FAN00003", SubmitStatus.refused),
        ("FAN09999", SubmitStatus.refused),
    ],
)
def test_submit_codes(
    config: UmsConfig, bank_key: KeyPair, code: str, status: SubmitStatus
) -> None:
    payload = {**golden_json("submit_accepted.json"), "respCode": code}
    answer = ADAPTER.read_submit(config, _answer(payload, bank_key))
    assert answer == SubmitAnswer(status, code=code, detail="交易成功")


def test_golden_submit_answers(config: UmsConfig, bank_key: KeyPair) -> None:
    accepted = _answer(golden_json("submit_accepted.json"), bank_key)
    assert ADAPTER.read_submit(config, accepted) == SubmitAnswer(
        SubmitStatus.accepted, code="99999999", detail="交易成功"
    )
    refused = _answer(golden_json("submit_refused_balance.json"), bank_key)
    assert ADAPTER.read_submit(config, refused) == SubmitAnswer(
        SubmitStatus.refused, code="FAN00004", detail="账户余额不足"
    )


def test_an_answer_signed_with_the_banks_next_key_is_read(
    config: UmsConfig, bank_key: KeyPair, next_bank_key: KeyPair
) -> None:
    rotating = config.model_copy(
        update={"bank_public_key_pem": [bank_key.public_pem, next_bank_key.public_pem]}
    )
    accepted = _answer(golden_json("submit_accepted.json"), next_bank_key)
    assert ADAPTER.read_submit(rotating, accepted).status == SubmitStatus.accepted
    assert ADAPTER.read_submit(config, accepted).status == SubmitStatus.unclear


def _unusable_answers(
    bank_key: KeyPair, stranger_key: KeyPair, payload: dict[str, Any]
) -> list[BankResponse]:
    body = signed_body(payload, bank_key.private_pem)
    signed = json.loads(body)
    unsigned = {k: v for k, v in signed.items() if k != "signature"}
    dump = json.dumps
    other_code = "FAN00017" if payload["respCode"] == "99999999" else "99999999"
    return [
        response(body, 502),
        response(body, 500),
        response(body, 404),
        response(b"<html>Bad Gateway</html>", 200),
        response(b"", 200),
        response(b"\xff\xfe", 200),
        response(dump([signed]).encode(), 200),
        response(dump(unsigned).encode(), 200),  # missing signature
        response(dump({**signed, "signature": ""}).encode(), 200),
        response(signed_body(payload, stranger_key.private_pem), 200),  # not the bank's key
        response(dump({**signed, "respCode": other_code}).encode(), 200),  # altered code
        # a key twice: the signature may cover the other value
        response(body[:-1] + f',"respCode":"{other_code}"}}'.encode(), 200),
        response(signed_body({**unsigned, "respCode": None}, bank_key.private_pem), 200),
    ]


def test_an_unusable_submit_answer_is_unclear(
    config: UmsConfig, bank_key: KeyPair, stranger_key: KeyPair
) -> None:
    payload = golden_json("submit_refused_balance.json")
    assert ADAPTER.read_submit(config, _answer(payload, bank_key)).status == SubmitStatus.refused
    for answer in _unusable_answers(bank_key, stranger_key, payload):
        assert ADAPTER.read_submit(config, answer).status == SubmitStatus.unclear, answer


def test_golden_query_answers(config: UmsConfig, bank_key: KeyPair) -> None:
    settled = _answer(golden_json("query_settled.json"), bank_key)
    assert ADAPTER.read_query(config, PAYOUT, settled) == QueryAnswer(
        QueryStatus.settled, code="99999999", detail="order status 2"
    )
    # orderSet as a string holding the array; our entry is found by its orderNo.
    returned = _answer(golden_json("query_returned_string.json"), bank_key)
    assert ADAPTER.read_query(config, PAYOUT, returned) == QueryAnswer(
        QueryStatus.returned, code="99999999", detail="order status 5"
    )
    not_found = _answer(golden_json("query_not_found.json"), bank_key)
    assert ADAPTER.read_query(config, PAYOUT, not_found) == QueryAnswer(
        QueryStatus.not_found, code="FAN00012", detail="原交易不存在"
    )


def _query_answer(order_set: Any, **changes: Any) -> dict[str, Any]:
    return {**golden_json("query_settled.json"), "orderSet": order_set, **changes}


@pytest.mark.parametrize(
    "order_status, status",
    [
        ("1", QueryStatus.processing),
        ("2", QueryStatus.settled),
        ("3", QueryStatus.failed),
        ("5", QueryStatus.returned),
        ("6", QueryStatus.processing),
        ("4", QueryStatus.processing),
        ("0", QueryStatus.processing),
        ("SUCCESS", QueryStatus.processing),
        ("02", QueryStatus.processing),
        ("", QueryStatus.processing),
        (None, QueryStatus.processing),
        (2, QueryStatus.settled),  # a bare number where the spec writes a string
        (True, QueryStatus.processing),
    ],
)
@pytest.mark.parametrize("as_string", [False, True])
def test_query_order_statuses(
    config: UmsConfig, bank_key: KeyPair, order_status: Any, status: QueryStatus, as_string: bool
) -> None:
    order_set: Any = [{"orderNo": PAYOUT.id, "status": order_status, "orderAmt": "1280000"}]
    if as_string:
        order_set = json.dumps(order_set, ensure_ascii=False, separators=(",", ":"))
    answer = ADAPTER.read_query(config, PAYOUT, _answer(_query_answer(order_set), bank_key))
    assert answer.status == status


def test_query_picks_our_entry_or_the_only_one(config: UmsConfig, bank_key: KeyPair) -> None:
    def read(order_set: Any) -> QueryStatus:
        return ADAPTER.read_query(
            config, PAYOUT, _answer(_query_answer(order_set), bank_key)
        ).status

    others = {"orderNo": "PO2024030100000099", "status": "2", "orderAmt": "1"}
    ours = {"orderNo": PAYOUT.id, "status": "3", "orderAmt": "1280000"}
    assert read([others, ours]) == QueryStatus.failed
    # The bank may number the order its own way: a single entry is the answer to our question.
    assert read([{"orderNo": "UMS778899", "status": "3"}]) == QueryStatus.failed
    assert read([{"status": "2"}]) == QueryStatus.settled
    # Several entries and none of them ours, or none at all: no answer.
    assert read([others, {**others, "orderNo": "X"}]) == QueryStatus.unclear
    assert read([ours, ours]) == QueryStatus.unclear
    assert read([]) == QueryStatus.unclear
    assert read("[]") == QueryStatus.unclear
    assert read(None) == QueryStatus.unclear
    assert read("not json") == QueryStatus.unclear
    assert read({"orderNo": PAYOUT.id, "status": "2"}) == QueryStatus.unclear
    assert read(["2"]) == QueryStatus.unclear
    # A settlement of another amount than ours is never taken for ours.
    assert read([{**ours, "status": "2", "orderAmt": "1280001"}]) == QueryStatus.unclear


@pytest.mark.parametrize("code", ["FAN00002", "FAN00003", "FAN00004", "00210003", "FAN00017"])
def test_other_query_codes_are_unclear(config: UmsConfig, bank_key: KeyPair, code: str) -> None:
    payload = _query_answer([{"orderNo": PAYOUT.id, "status": "2"}], respCode=code)
    answer = ADAPTER.read_query(config, PAYOUT, _answer(payload, bank_key))
    assert answer.status == QueryStatus.unclear
    assert answer.code == code


def test_an_unusable_query_answer_is_unclear(
    config: UmsConfig, bank_key: KeyPair, stranger_key: KeyPair
) -> None:
    for payload in (golden_json("query_settled.json"), golden_json("query_not_found.json")):
        for answer in _unusable_answers(bank_key, stranger_key, payload):
            assert ADAPTER.read_query(config, PAYOUT, answer).status == QueryStatus.unclear
    # One changed character in the signed orderSet breaks the signature too.
    body = signed_body(golden_json("query_settled.json"), bank_key.private_pem)
    tampered = response(body.replace(b'"status":"2"', b'"status":"3"'))
    assert ADAPTER.read_query(config, PAYOUT, tampered).status == QueryStatus.unclear
