"""gmbank (spec gmbank.md): JSON notifications and results, JSON instructions and answers, all
signed SM2/SM3 in X-GM-* headers; the statement is a GBK CSV."""

import csv
import io
import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from app.banks.gmbank.signing import check_headers, new_nonce, sign_headers, timestamp_ms
from app.kit.clock import SHANGHAI
from app.kit.money import fen_from_yuan, yuan
from bank_simulator.config import SimBank
from bank_simulator.messages.base import INSTRUCTION_ID, Dialect, Outgoing, Submission, Unreadable
from bank_simulator.state import Account, Direction, Instruction, InstructionState, Payment

JSON = "application/json; charset=utf-8"

OK = "0000"
DUPLICATE = "1001"
NOT_FOUND = "1004"
INSUFFICIENT = "2001"
NO_SUCH_ACCOUNT = "2002"
REFUSED = "3001"
BAD_SIGNATURE = "9001"
MALFORMED = "9002"

QUERY_STATUS = {
    InstructionState.processing: "PROCESSING",
    InstructionState.success: "SUCCESS",
    InstructionState.failed: "FAIL",
    InstructionState.refused: "FAIL",
    InstructionState.returned: "RETURNED",
}

STATEMENT_HEADER = [
    "账号",
    "交易日期",
    "交易时间",
    "流水号",
    "借贷标志",
    "金额",
    "余额",
    "对方账号",
    "对方户名",
    "摘要",
    "业务参考号",
]


def verify_request(bank: SimBank, headers: Mapping[str, str], body: bytes, now: datetime) -> str:
    """The request's nonce; raises app.banks.protocol.VerificationFailed."""
    return check_headers(
        headers, body, [bank.value("service_public_key_hex")], bank.value("app_id"), now
    )


def read_transfer(body: bytes) -> Submission:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise Unreadable("not JSON") from error
    if not isinstance(payload, dict):
        raise Unreadable("not a JSON object")

    def field(name: str, *, required: bool = True) -> str:
        value = payload.get(name)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value):
            raise Unreadable(f"{name} is missing or not a string")
        return value

    instruction_id = field("instrId")
    if not INSTRUCTION_ID.fullmatch(instruction_id):
        raise Unreadable("instrId is not 1 to 32 letters and digits")
    kind = {"PAYOUT": "payout", "REFUND": "refund"}.get(field("type"))
    if kind is None:
        raise Unreadable("type is neither PAYOUT nor REFUND")
    try:
        amount_fen = fen_from_yuan(field("amount"))
    except ValueError as error:
        raise Unreadable("amount is not an exact amount of fen") from error
    # A refund goes back against the payment it names (origSerialNo); the payee may be left out.
    refund = kind == "refund"
    return Submission(
        id=instruction_id,
        kind=kind,
        account_no=field("fromAcct"),
        amount_fen=amount_fen,
        payee_account=field("toAcct", required=not refund),
        payee_name=field("toName", required=not refund),
        memo=field("memo", required=False),
        original_reference=field("origSerialNo", required=refund) or None,
    )


def answer(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


def _mask_name(name: str) -> str:
    return name[:1] + "*" * (len(name) - 1) if name else name


def _mask_account(account: str) -> str:
    return account[:4] + "*" * (len(account) - 8) + account[-4:] if len(account) > 8 else account


def _txn_time(moment: datetime) -> str:
    return f"{moment.astimezone(SHANGHAI):%Y%m%d%H%M%S}"


class GmbankDialect(Dialect):
    payment_success_status = "SUCCESS"
    crediting_statuses = frozenset({"SUCCESS"})
    statement_content_type = "text/csv; charset=GBK"

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
        return self._message(
            msgId=message_id,
            msgType="CREDIT",
            acctNo=payment.account_no,
            serialNo=payment.bank_reference,
            amount=amount_text,
            orderNo=payment.order_no,
            instrId=None,
            status=status,
            failReason=None,
            txnTime=_txn_time(at),
            # The bank shows the payer as the spec's example does: masked.
            payerName=_mask_name(payment.payer_name),
            payerAcct=_mask_account(payment.payer_account),
        )

    def result(
        self, bank: SimBank, *, message_id: str, instruction: Instruction, at: datetime
    ) -> Outgoing:
        settled = instruction.state is InstructionState.success
        return self._message(
            msgId=message_id,
            msgType="PAYOUT_RESULT" if instruction.kind == "payout" else "REFUND_RESULT",
            acctNo=instruction.account_no,
            serialNo=instruction.bank_reference,
            amount=yuan(instruction.amount_fen),
            orderNo=None,
            instrId=instruction.id,
            status="SUCCESS" if settled else "FAIL",
            failReason=None if settled else instruction.reason,
            txnTime=_txn_time(at),
        )

    def returned(
        self,
        bank: SimBank,
        *,
        message_id: str,
        instruction: Instruction,
        bank_reference: str,
        at: datetime,
    ) -> Outgoing:
        return self._message(
            msgId=message_id,
            msgType="RETURN",
            acctNo=instruction.account_no,
            serialNo=bank_reference,
            amount=yuan(instruction.amount_fen),
            orderNo=None,
            instrId=instruction.id,
            status="SUCCESS",
            failReason=instruction.reason,
            txnTime=_txn_time(at),
        )

    @staticmethod
    def _message(**fields: Any) -> Outgoing:
        message = {"currency": "CNY", **fields}
        return Outgoing(answer(message), JSON)

    def sign(self, bank: SimBank, body: bytes, now: datetime) -> dict[str, str]:
        return sign_headers(
            bank.value("app_id"),
            bank.secret("bank_private_key_hex"),
            body,
            timestamp_ms(now),
            new_nonce(),
        )

    def acknowledged(self, status_code: int, body: bytes) -> bool:
        if status_code != 200:
            return False
        try:
            reply = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return False
        return isinstance(reply, dict) and reply.get("code") == OK

    def statement(self, bank: SimBank, account: Account, day: date, now: datetime) -> bytes:
        opening, transactions, closing = account.day(day)
        text = io.StringIO()
        # RFC 4180 line ends: the spec says CSV and leaves the rest to the standard.
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(STATEMENT_HEADER)
        for t in transactions:
            writer.writerow(
                [
                    account.account_no,
                    f"{t.booked_at:%Y%m%d}",
                    f"{t.booked_at:%H%M%S}",
                    t.bank_reference,
                    "贷" if t.direction is Direction.credit else "借",
                    yuan(t.amount_fen),
                    _signed_yuan(t.balance_after_fen),
                    t.counterparty_account,
                    t.counterparty_name,
                    t.memo,
                    t.reference,
                ]
            )
        writer.writerow(["期初余额", _signed_yuan(opening)])
        writer.writerow(["期末余额", _signed_yuan(closing)])
        # A character GBK cannot hold cannot be in the bank's system either: it shows as "?".
        return text.getvalue().encode("gbk", errors="replace")


def _signed_yuan(fen: int) -> str:
    return yuan(fen) if fen >= 0 else "-" + yuan(-fen)
