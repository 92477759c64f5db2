"""ums (spec ums.md): form notifications signed with the notify key, JSON instructions and responses
signed SHA256withRSA, and the `H|D|T` statement file."""

import json
from datetime import date, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

from app.banks.ums.signing import notify_signature, sign_file, sign_payload, verify_payload
from app.kit.clock import SHANGHAI
from app.kit.money import fen_from_digits
from bank_simulator.config import SimBank
from bank_simulator.messages.base import INSTRUCTION_ID, Dialect, Outgoing, Submission, Unreadable
from bank_simulator.state import Account, Direction, InstructionState, Payment

PAYOUT = "202002"
REFUND = "202011"
QUERY = "202008"

ACCEPTED = "99999999"
BAD_SIGNATURE = "FAN00002"
REFUSED = "FAN00003"
INSUFFICIENT = "FAN00004"
NOT_FOUND = "FAN00012"
DUPLICATE = "FAN00017"

# 202008 orderSet statuses.
QUERY_STATUS = {
    InstructionState.processing: "1",
    InstructionState.success: "2",
    InstructionState.failed: "3",
    InstructionState.refused: "3",
    InstructionState.returned: "5",
}


def read_request(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise Unreadable("not JSON") from error
    if not isinstance(payload, dict):
        raise Unreadable("not a JSON object")
    return payload


def verify_request(bank: SimBank, payload: dict[str, Any]) -> bool:
    return verify_payload(payload, [bank.value("service_public_key_pem")])


def read_instruction(trans_code: str, payload: dict[str, Any]) -> Submission:
    """A 202002 payout or 202011 refund, as the bank reads it."""

    def field(name: str, *, required: bool = True) -> str:
        value = payload.get(name, "")
        if not isinstance(value, str) or (required and not value):
            raise Unreadable(f"{name} is missing or not a string")
        return value

    if payload.get("transCode") != trans_code:
        raise Unreadable("transCode does not match the path")
    request_id = field("srcReqId")
    if not INSTRUCTION_ID.fullmatch(request_id):
        raise Unreadable("srcReqId is not 1 to 32 letters and digits")
    amount_field = "payAmt" if trans_code == PAYOUT else "refundAmt"
    try:
        amount_fen = fen_from_digits(field(amount_field))
    except ValueError as error:
        raise Unreadable(f"{amount_field} is not an amount in fen") from error
    if trans_code == PAYOUT:
        return Submission(
            id=request_id,
            kind="payout",
            account_no=field("acctNo"),
            amount_fen=amount_fen,
            payee_account=field("targetAcctNo"),
            payee_name=field("targetAcctName"),
            memo=field("memo", required=False),
        )
    return Submission(
        id=request_id,
        kind="refund",
        account_no=field("acctNo"),
        amount_fen=amount_fen,
        payee_account="",
        payee_name="",
        memo=field("memo", required=False),
        original_reference=field("origSeqId"),
        origin={"origTargetOrderId": field("origTargetOrderId")},
    )


def response(bank: SimBank, fields: dict[str, Any]) -> bytes:
    """A response body signed with the bank's key, as every ums response is."""
    payload = dict(fields)
    payload["signature"] = sign_payload(payload, bank.secret("bank_private_key_pem"))
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _flat(text: str) -> str:
    # A `|` or a line break inside a name or memo would shift the file's columns; the bank's
    # system has no escape for them, so it writes a space.
    return text.replace("|", " ").replace("\r", " ").replace("\n", " ")


class UmsDialect(Dialect):
    payment_success_status = "TRADE_SUCCESS"
    crediting_statuses = frozenset({"TRADE_SUCCESS"})
    pushes_results: ClassVar[bool] = False
    statement_content_type = "text/plain; charset=utf-8"

    def amount_text(self, fen: int) -> str:
        return str(fen)

    def payment(
        self,
        bank: SimBank,
        *,
        message_id: str,
        payment: Payment,
        status: str,
        amount_text: str,
        at: datetime,
    ) -> Outgoing:
        local = at.astimezone(SHANGHAI)
        fields = {
            "mid": bank.value("mid"),
            "tid": bank.value("tid"),
            # Not in the spec's table: the bank adds fields at will, and they are signed too.
            "instMid": "QRPAYDEFAULT",
            "merOrderId": payment.order_no,
            "totalAmount": amount_text,
            "status": status,
            "targetOrderId": payment.channel_order_id,
            "seqId": payment.bank_reference,
            "payTime": f"{local:%Y-%m-%d %H:%M:%S}",
            "settleDate": f"{local:%Y-%m-%d}",
            "notifyId": message_id,
            "acctNo": payment.account_no,
            "signType": bank.sign_type,
        }
        fields["sign"] = notify_signature(fields, bank.secret("md5_key"), bank.sign_type)
        return Outgoing(urlencode(fields).encode(), "application/x-www-form-urlencoded")

    def sign(self, bank: SimBank, body: bytes, now: datetime) -> dict[str, str]:
        return {}  # the signature is a field of the form itself

    def acknowledged(self, status_code: int, body: bytes) -> bool:
        return status_code == 200 and body.strip() == b"SUCCESS"

    def statement(self, bank: SimBank, account: Account, day: date, now: datetime) -> bytes:
        opening, transactions, closing = account.day(day)
        lines = [
            "|".join(
                [
                    "H",
                    bank.value("group_id"),
                    account.account_no,
                    f"{day:%Y%m%d}",
                    str(opening),
                    str(closing),
                    str(len(transactions)),
                ]
            )
        ]
        for t in transactions:
            lines.append(
                "|".join(
                    [
                        "D",
                        t.bank_reference,
                        f"{t.booked_at:%Y%m%d%H%M%S}",
                        t.direction.value,
                        str(t.amount_fen),
                        str(t.balance_after_fen),
                        _flat(t.counterparty_account),
                        _flat(t.counterparty_name),
                        t.reference,
                        _flat(t.memo),
                    ]
                )
            )
        credits = sum(t.amount_fen for t in transactions if t.direction is Direction.credit)
        debits = sum(t.amount_fen for t in transactions if t.direction is Direction.debit)
        lines.append(f"T|{credits}|{debits}")
        return ("\n".join(lines) + "\n").encode()

    def statement_headers(self, bank: SimBank, body: bytes, now: datetime) -> dict[str, str]:
        return {"X-File-Signature": sign_file(body, bank.secret("bank_private_key_pem"))}
