"""Our instructions and queries as the bank receives them, and what we make of its answers."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from app.banks.gmbank import ADAPTER
from app.banks.gmbank.config import GmbankConfig
from app.banks.gmbank.signing import check_headers, timestamp_ms
from app.banks.protocol import (
    BankAdapter,
    OutboundInstruction,
    OutboundRequest,
)
from app.models.instruction import InstructionKind
from tests.banks.gmbank.helpers import APP_ID, NOW, KeyPair, key_pair, lower

ESCROW = "6228480012345678901"

PAYOUT = OutboundInstruction(
    id="PO20261129X7Y8Z9",
    kind=InstructionKind.payout,
    amount_fen=2000000,
    escrow_account_no=ESCROW,
    payee_account_no="6222020200112233445",
    payee_name="北京启明教育科技有限公司",
    memo="课时费结算 2026-11",
    created_at=datetime(2026, 11, 29, 1, 0, tzinfo=UTC),
)
REFUND = OutboundInstruction(
    id="RF20261129R4T5Y6",
    kind=InstructionKind.refund,
    amount_fen=123405,
    escrow_account_no=ESCROW,
    payee_account_no="6222********1234",
    payee_name="张三",
    memo="退费 EN20261128A1B2C3",
    created_at=datetime(2026, 11, 29, 1, 0, tzinfo=UTC),
    order_no="EN20261128A1B2C3",
    payment_reference="SN20261128153000000123",
)

ADAPTER_AS_PROTOCOL: BankAdapter = ADAPTER  # mypy checks that the adapter keeps the protocol


def _as_the_bank_checks(request: OutboundRequest, our_key: KeyPair) -> str:
    """What the bank does on receipt: verify our signature with our public key, within 300 s."""
    return check_headers(lower(request.headers), request.body, [our_key.public], APP_ID, NOW)


@pytest.mark.parametrize(
    ("instruction", "expected"),
    [
        (
            PAYOUT,
            {
                "instrId": "PO20261129X7Y8Z9",
                "type": "PAYOUT",
                "fromAcct": ESCROW,
                "toAcct": "6222020200112233445",
                "toName": "北京启明教育科技有限公司",
                "amount": "20000.00",
                "origSerialNo": None,
                "memo": "课时费结算 2026-11",
            },
        ),
        (
            REFUND,
            {
                "instrId": "RF20261129R4T5Y6",
                "type": "REFUND",
                "fromAcct": ESCROW,
                "toAcct": "6222********1234",
                "toName": "张三",
                "amount": "1234.05",
                "origSerialNo": "SN20261128153000000123",
                "memo": "退费 EN20261128A1B2C3",
            },
        ),
    ],
    ids=["payout", "refund"],
)
def test_a_transfer_has_exactly_the_specs_fields_signed_with_our_key(
    instruction: OutboundInstruction,
    expected: dict[str, Any],
    config: GmbankConfig,
    our_key: KeyPair,
) -> None:
    request = ADAPTER.submit_request(config, instruction, NOW)

    assert (request.method, request.path) == ("POST", "/api/v1/transfer")
    # Compact UTF-8 JSON, fields in the spec's order, Chinese as itself.
    assert request.body == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode()
    assert list(json.loads(request.body)) == list(expected)
    assert set(request.headers) == {
        "X-GM-AppId",
        "X-GM-Timestamp",
        "X-GM-Nonce",
        "X-GM-Signature",
        "Content-Type",
    }
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert request.headers["X-GM-AppId"] == APP_ID
    assert request.headers["X-GM-Timestamp"] == str(timestamp_ms(NOW))
    assert _as_the_bank_checks(request, our_key) == request.headers["X-GM-Nonce"]


def test_each_request_has_a_new_nonce(config: GmbankConfig, our_key: KeyPair) -> None:
    first = ADAPTER.submit_request(config, PAYOUT, NOW)
    again = ADAPTER.submit_request(config, PAYOUT, NOW)
    assert first.body == again.body
    assert first.headers["X-GM-Nonce"] != again.headers["X-GM-Nonce"]
    assert 16 <= len(first.headers["X-GM-Nonce"]) <= 32


def test_the_bank_refuses_our_request_with_its_own_key(config: GmbankConfig) -> None:
    request = ADAPTER.submit_request(config, PAYOUT, NOW)
    with pytest.raises(Exception, match="no bank key"):
        check_headers(request.headers, request.body, [key_pair().public], APP_ID, NOW)


def test_a_refund_without_the_payments_serial_no_is_not_sent(config: GmbankConfig) -> None:
    refund = OutboundInstruction(
        **{**REFUND.__dict__} if False else _fields(REFUND, payment_reference=None)
    )
    with pytest.raises(ValueError, match="serialNo"):
        ADAPTER.submit_request(config, refund, NOW)


def _fields(instruction: OutboundInstruction, **changes: Any) -> dict[str, Any]:
    return {name: getattr(instruction, name) for name in instruction.__slots__} | changes
