"""gmbank's notifications (spec "Notifications"), read into our bank events. Strict about what moves
money (amount, currency, references, time); an unknown message type or status moves none."""

import json
import re
from datetime import datetime
from typing import Any

from app.banks.protocol import (
    BankEvent,
    InstructionResult,
    MalformedMessage,
    Notice,
    Notification,
    PaymentReceived,
    ResultStatus,
    notified_fen,
)
from app.kit.clock import SHANGHAI
from app.kit.money import fen_from_yuan

_TXN_TIME = re.compile(r"[0-9]{14}")  # yyyyMMddHHmmss; strptime alone would take "2026112815300"
_RESULT_TYPES = {"PAYOUT_RESULT", "REFUND_RESULT"}
_RESULT_STATUSES = {"SUCCESS": ResultStatus.settled, "FAIL": ResultStatus.failed}


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json would keep the last of two "amount"s silently; a message that says two things is refused.
    message = dict(pairs)
    if len(message) != len(pairs):
        raise MalformedMessage("a field appears twice")
    return message


def _refuse_constant(name: str) -> Any:
    raise MalformedMessage(f"{name} is not JSON")


def read_json(body: bytes) -> Any:
    """A JSON document in UTF-8; MalformedMessage otherwise."""
    try:
        return json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_refuse_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise MalformedMessage(f"not JSON in UTF-8: {error}") from None


def _text(message: dict[str, Any], field: str) -> str:
    value = message.get(field)
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"{field} is missing")
    return value


def _optional_text(message: dict[str, Any], field: str) -> str | None:
    value = message.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedMessage(f"{field} is not a string")
    return value


def _amount_fen(message: dict[str, Any]) -> int:
    amount = message.get("amount")
    # The spec writes amounts as strings; a JSON number would be read through a float.
    if not isinstance(amount, str):
        raise MalformedMessage("amount is not a string of yuan")
    try:
        fen = notified_fen(fen_from_yuan(amount), "amount")
    except ValueError as error:
        raise MalformedMessage(str(error)) from None
    if message.get("currency") != "CNY":
        raise MalformedMessage(f"currency {message.get('currency')!r} is not CNY")
    return fen


def _optional_amount_fen(message: dict[str, Any]) -> int | None:
    # A result names its instruction, which knows its amount; the amount, when given, must be exact.
    return None if message.get("amount") is None else _amount_fen(message)


def _txn_time(message: dict[str, Any]) -> datetime:
    text = _text(message, "txnTime")
    try:
        if not _TXN_TIME.fullmatch(text):
            raise ValueError
        return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=SHANGHAI)
    except ValueError:
        raise MalformedMessage(f"txnTime {text!r} is not yyyyMMddHHmmss") from None


def _credit(message: dict[str, Any], account_no: str, status: str) -> BankEvent:
    amount_fen = _amount_fen(message)
    order_no = _optional_text(message, "orderNo")
    if status != "SUCCESS":
        return Notice(
            account_no=account_no,
            description=f"gmbank CREDIT {amount_fen} fen for order {order_no}: status {status}",
        )
    return PaymentReceived(
        account_no=account_no,
        order_no=order_no,
        amount_fen=amount_fen,
        bank_reference=_text(message, "serialNo"),
        paid_at=_txn_time(message),
        channel_order_id=None,
        payer_name=_optional_text(message, "payerName"),
        payer_account_no=_optional_text(message, "payerAcct"),
    )


def _result(message: dict[str, Any], account_no: str, status: ResultStatus) -> InstructionResult:
    return InstructionResult(
        instruction_id=_text(message, "instrId"),
        status=status,
        account_no=account_no,
        amount_fen=_optional_amount_fen(message),
        reason=_optional_text(message, "failReason")
        if status in (ResultStatus.failed, ResultStatus.returned)
        else None,
        bank_reference=_optional_text(message, "serialNo"),
    )


def parse(body: bytes) -> Notification:
    message = read_json(body)
    if not isinstance(message, dict):
        raise MalformedMessage("the message is not a JSON object")
    message_id = _text(message, "msgId")
    kind = _text(message, "msgType")
    if kind not in _RESULT_TYPES | {"CREDIT", "RETURN"}:
        account = message.get("acctNo")
        return Notification(
            message_id=message_id,
            events=(
                Notice(
                    account_no=account if isinstance(account, str) and account else None,
                    description=f"gmbank message of unknown type {kind!r}",
                ),
            ),
        )
    account_no = _text(message, "acctNo")
    event: BankEvent
    if kind == "CREDIT":
        event = _credit(message, account_no, _text(message, "status"))
    elif kind == "RETURN":
        event = _result(message, account_no, ResultStatus.returned)
    else:
        status = _RESULT_STATUSES.get(_text(message, "status"), ResultStatus.pending)
        event = _result(message, account_no, status)
    return Notification(message_id=message_id, events=(event,))
