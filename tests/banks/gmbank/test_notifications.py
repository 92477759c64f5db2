"""Notifications as the bank posts them: what they become, what is refused, and what we answer."""

import json
from datetime import datetime
from typing import Any

import pytest

from app.banks.gmbank import ADAPTER
from app.banks.protocol import (
    InstructionResult,
    MalformedMessage,
    Notice,
    Notification,
    PaymentReceived,
    ReplyKind,
    ResultStatus,
)
from app.kit.clock import SHANGHAI
from tests.banks.gmbank.conftest import SignedRequest
from tests.banks.gmbank.helpers import GOLDEN, golden

ESCROW = "6228480012345678901"

EXPECTED = {
    "credit_success.json": Notification(
        message_id="GM202611281530000001",
        events=(
            PaymentReceived(
                account_no=ESCROW,
                order_no="EN20261128A1B2C3",
                amount_fen=123450,
                bank_reference="SN20261128153000000123",
                paid_at=datetime(2026, 11, 28, 15, 30, 0, tzinfo=SHANGHAI),
                channel_order_id=None,
                payer_name="张*",
                payer_account_no="6222********1234",
            ),
        ),
    ),
    "credit_without_order.json": Notification(
        message_id="GM202611281531000002",
        events=(
            PaymentReceived(
                account_no=ESCROW,
                order_no=None,
                amount_fen=8800,
                bank_reference="SN20261128153100000124",
                paid_at=datetime(2026, 11, 28, 0, 5, 1, tzinfo=SHANGHAI),
                channel_order_id=None,
                payer_name="李*",
                payer_account_no="6217********5678",
            ),
        ),
    ),
    "credit_processing.json": Notification(
        message_id="GM202611281532000003",
        events=(
            Notice(
                account_no=ESCROW,
                description="gmbank CREDIT 50000 fen for order EN20261128D4E5F6: status PROCESSING",
            ),
        ),
    ),
    "payout_success.json": Notification(
        message_id="GM202611291000000004",
        events=(
            InstructionResult(
                instruction_id="PO20261129X7Y8Z9",
                status=ResultStatus.settled,
                account_no=ESCROW,
                amount_fen=2000000,
                reason=None,
                bank_reference="SN20261129100000000200",
            ),
        ),
    ),
    "payout_fail.json": Notification(
        message_id="GM202611291001000005",
        events=(
            InstructionResult(
                instruction_id="PO20261129Q1W2E3",
                status=ResultStatus.failed,
                account_no=ESCROW,
                amount_fen=2000000,
                reason="收款账户户名不符",
                bank_reference=None,
            ),
        ),
    ),
    "refund_success.json": Notification(
        message_id="GM202611291002000006",
        events=(
            InstructionResult(
                instruction_id="RF20261129R4T5Y6",
                status=ResultStatus.settled,
                account_no=ESCROW,
                amount_fen=123450,
                reason=None,
                bank_reference="SN20261129100200000201",
            ),
        ),
    ),
    "refund_accepted.json": Notification(
        message_id="GM202611291003000007",
        events=(
            InstructionResult(
                instruction_id="RF20261129U7I8O9",
                status=ResultStatus.pending,
                account_no=ESCROW,
                amount_fen=123450,
                reason=None,
                bank_reference=None,
            ),
        ),
    ),
    "return.json": Notification(
        message_id="GM202612021400000008",
        events=(
            InstructionResult(
                instruction_id="PO20261129X7Y8Z9",
                status=ResultStatus.returned,
                account_no=ESCROW,
                amount_fen=2000000,
                reason="收款账户已销户",
                bank_reference="SN20261202140000000300",
            ),
        ),
    ),
    "unknown_type.json": Notification(
        message_id="GM202612021500000009",
        events=(Notice(account_no=ESCROW, description="gmbank message of unknown type 'FREEZE'"),),
    ),
}


def test_every_golden_message_has_an_expectation() -> None:
    assert sorted(path.name for path in GOLDEN.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_message_verifies_and_parses_to_its_events(
    name: str, config: Any, signed_request: SignedRequest
) -> None:
    request = signed_request(golden(name))

    verified = ADAPTER.verify(config, request)

    assert verified.nonce == request.headers["x-gm-nonce"]
    assert verified.nonce_ttl_seconds == 600
    assert ADAPTER.parse_notification(request) == EXPECTED[name]


def _with(name: str, **changes: Any) -> bytes:
    message = json.loads(golden(name))
    message.update(changes)
    return json.dumps(message, ensure_ascii=False).encode()


def _parse(body: bytes, signed_request: SignedRequest) -> Notification:
    return ADAPTER.parse_notification(signed_request(body))


@pytest.mark.parametrize(
    "amount",
    [
        "1234.505",
        "-1.00",
        "1e3",
        "1E3",
        "",
        " 12.00",
        "12.00 ",
        "+12.00",
        "1,234.50",
        "12.",
        ".5",
        "01.00",
        "\uff10.\uff15\uff10",
        "NaN",
        "Infinity",
        1234.5,
        1234,
        True,
        ["1.00"],
    ],
)
@pytest.mark.parametrize("name", ["credit_success.json", "payout_success.json", "return.json"])
def test_an_amount_that_is_not_exact_fen_is_malformed(
    name: str, amount: Any, signed_request: SignedRequest
) -> None:
    with pytest.raises(MalformedMessage):
        _parse(_with(name, amount=amount), signed_request)


def test_a_credit_without_an_amount_is_malformed(signed_request: SignedRequest) -> None:
    with pytest.raises(MalformedMessage):
        _parse(_with("credit_success.json", amount=None), signed_request)


def test_a_result_without_an_amount_still_names_its_instruction(
    signed_request: SignedRequest,
) -> None:
    (event,) = _parse(_with("payout_success.json", amount=None), signed_request).events
    assert isinstance(event, InstructionResult)
    assert (event.instruction_id, event.status, event.amount_fen) == (
        "PO20261129X7Y8Z9",
        ResultStatus.settled,
        None,
    )


def test_largest_and_smallest_amounts_are_exact(signed_request: SignedRequest) -> None:
    for amount, fen in [("0.01", 1), ("9999999999999999.99", 999999999999999999)]:
        (event,) = _parse(_with("credit_success.json", amount=amount), signed_request).events
        assert isinstance(event, PaymentReceived)
        assert event.amount_fen == fen


@pytest.mark.parametrize("currency", ["USD", "cny", "", None])
def test_a_currency_other_than_cny_is_malformed(
    currency: Any, signed_request: SignedRequest
) -> None:
    with pytest.raises(MalformedMessage):
        _parse(_with("credit_success.json", currency=currency), signed_request)


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("credit_success.json", {"msgId": None}),
        ("credit_success.json", {"msgId": ""}),
        ("credit_success.json", {"msgType": None}),
        ("credit_success.json", {"acctNo": None}),
        ("credit_success.json", {"serialNo": None}),
        ("credit_success.json", {"serialNo": 123}),
        ("credit_success.json", {"status": None}),
        ("credit_success.json", {"orderNo": 12345}),
        ("credit_success.json", {"txnTime": None}),
        ("credit_success.json", {"txnTime": "2026-11-28 15:30:00"}),
        ("credit_success.json", {"txnTime": "20261128153"}),
        ("credit_success.json", {"txnTime": "20261131153000"}),
        ("credit_success.json", {"txnTime": "20261128253000"}),
        ("payout_success.json", {"instrId": None}),
        ("payout_success.json", {"instrId": ""}),
        ("payout_success.json", {"acctNo": None}),
        ("payout_fail.json", {"status": None}),
        ("payout_fail.json", {"failReason": 9001}),
        ("return.json", {"instrId": None}),
    ],
)
def test_a_message_missing_what_it_needs_is_malformed(
    name: str, changes: dict[str, Any], signed_request: SignedRequest
) -> None:
    with pytest.raises(MalformedMessage):
        _parse(_with(name, **changes), signed_request)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'"CREDIT"',
        b"null",
        golden("credit_success.json").decode().encode("gbk"),  # the statement's encoding, not this
        b"\xef\xbb\xbf" + golden("credit_success.json"),  # a byte-order mark
        golden("credit_success.json")[:-1],
        # Two amounts: which one the bank meant is not ours to guess.
        golden("credit_success.json")[:-1] + b',"amount":"9999.00"}',
    ],
)
def test_a_body_that_is_not_one_json_object_in_utf8_is_malformed(
    body: bytes, signed_request: SignedRequest
) -> None:
    with pytest.raises(MalformedMessage):
        _parse(body, signed_request)


@pytest.mark.parametrize(
    "status",
    ["PROCESSING", "PENDING", "ACCEPTED", "success", "Success", " SUCCESS", "UNKNOWN", "0"],
)
def test_an_unknown_status_never_means_money_moved(
    status: str, signed_request: SignedRequest
) -> None:
    (credit,) = _parse(_with("credit_success.json", status=status), signed_request).events
    assert isinstance(credit, Notice)

    for name in ("payout_success.json", "refund_success.json"):
        (result,) = _parse(_with(name, status=status), signed_request).events
        assert isinstance(result, InstructionResult)
        assert result.status == ResultStatus.pending
        assert result.reason is None


def test_a_failed_credit_is_only_a_notice(signed_request: SignedRequest) -> None:
    body = _with("credit_success.json", status="FAIL", failReason="账户冻结")
    (event,) = _parse(body, signed_request).events
    assert event == Notice(
        account_no=ESCROW,
        description="gmbank CREDIT 123450 fen for order EN20261128A1B2C3: status FAIL",
    )


def test_a_resend_carries_the_same_message_id(signed_request: SignedRequest) -> None:
    body = golden("credit_success.json")
    first, again = signed_request(body), signed_request(body)
    assert first.headers["x-gm-nonce"] != again.headers["x-gm-nonce"]
    assert ADAPTER.parse_notification(first) == ADAPTER.parse_notification(again)


@pytest.mark.parametrize(
    ("kind", "status_code", "body"),
    [
        (ReplyKind.ok, 200, {"code": "0000", "msg": "OK"}),
        (ReplyKind.bad_signature, 401, {"code": "9001", "msg": "signature verification failed"}),
        (ReplyKind.malformed, 400, {"code": "9002", "msg": "malformed message"}),
    ],
)
def test_replies_are_the_banks_own(kind: ReplyKind, status_code: int, body: Any) -> None:
    reply = ADAPTER.reply(kind)
    assert reply.status_code == status_code
    assert reply.media_type == "application/json"
    assert reply.body == json.dumps(body).encode()
    assert json.loads(reply.body) == body
