"""The ums adapter (spec ums.md): form notifications signed with an appended key, JSON
instructions signed with SHA256withRSA, outcomes pulled with a 202008 query."""

import json
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel

from app.banks.protocol import (
    BankEvent,
    BankResponse,
    DebitBooked,
    InboundRequest,
    MalformedMessage,
    Notice,
    Notification,
    OutboundInstruction,
    OutboundRequest,
    PaymentReceived,
    QueryAnswer,
    QueryStatus,
    Reply,
    ReplyKind,
    SignatureProblem,
    StatementReader,
    SubmitAnswer,
    SubmitStatus,
    VerificationFailed,
    Verified,
    notified_fen,
)
from app.banks.ums.config import UmsConfig
from app.banks.ums.messages import ambiguous_field, form_fields, json_object, pay_time
from app.banks.ums.signing import (
    NOTIFY_SIGN_TYPES,
    notify_signature,
    sign_payload,
    verify_file,
    verify_payload,
)
from app.banks.ums.statement import UmsStatement
from app.kit.clock import SHANGHAI
from app.kit.money import fen_from_digits
from app.kit.signatures import equal
from app.models.instruction import InstructionKind

PAYOUT = "202002"
REFUND = "202011"
QUERY = "202008"
PATH = "/channel/Business/UnifyMulti/"

ACCEPTED = "99999999"
DUPLICATE = "FAN00017"
IN_DOUBT = "00210003"  # the bank does not know yet whether it took the request: query first
NOT_FOUND = "FAN00012"

PAID = "TRADE_SUCCESS"  # the only notification status that credits money
REFUNDED = "TRADE_REFUND"  # the payment was paid back: money left the escrow account

# orderSet statuses of a 202008 answer; anything else is still processing, never success.
ORDER_STATUSES = {
    "1": QueryStatus.processing,
    "2": QueryStatus.settled,
    "3": QueryStatus.failed,
    "5": QueryStatus.returned,  # 退票: paid, then came back
    "6": QueryStatus.processing,  # resubmitted by the bank
}

_REPLIES = {
    ReplyKind.ok: Reply(200, b"SUCCESS", "text/plain"),
    ReplyKind.bad_signature: Reply(401, b"FAILED", "text/plain"),
    ReplyKind.malformed: Reply(400, b"FAILED", "text/plain"),
    ReplyKind.refused: Reply(400, b"FAILED", "text/plain"),
}


class _NoAnswer(Exception):
    """A response, or part of one, that is not a usable answer."""


def _required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name, "")
    if not value:
        raise MalformedMessage(f"missing {name}")
    return value


class UmsAdapter:
    name: ClassVar[str] = "ums"
    config_model: ClassVar[type[BaseModel]] = UmsConfig
    results_by_query: ClassVar[bool] = True

    # --- Notifications -----------------------------------------------------------------------

    def verify(self, config: UmsConfig, request: InboundRequest) -> Verified:
        try:
            fields = form_fields(request.body)
        except ValueError as error:
            raise VerificationFailed(
                SignatureProblem.bad, f"unreadable form body: {error}"
            ) from None
        sign = fields.get("sign", "")
        if not sign:
            raise VerificationFailed(SignatureProblem.missing, "no sign field")
        sign_type = fields.get("signType", "")
        if sign_type not in NOTIFY_SIGN_TYPES:
            raise VerificationFailed(SignatureProblem.bad, f"unknown signType {sign_type!r}")
        # Every key is tried, so the time taken does not tell which one (if any) matched.
        matches = [
            equal(notify_signature(fields, key.get_secret_value(), sign_type), sign)
            for key in config.md5_key
        ]
        if not any(matches):
            raise VerificationFailed(SignatureProblem.bad, "sign does not match")
        return Verified()  # the scheme has no nonce or timestamp; resends carry the same notifyId

    def parse_notification(self, request: InboundRequest) -> Notification:
        try:
            fields = form_fields(request.body)
        except ValueError as error:
            raise MalformedMessage(f"unreadable form body: {error}") from None
        if (ambiguous := ambiguous_field(fields)) is not None:
            # The signed string joins fields with `&` and `=`, so such a field could have been
            # cut out of others (or be cut into others) without changing the signature.
            raise MalformedMessage(f"field {ambiguous!r} contains '&' or '=' (spec 1)")
        message_id = _required(fields, "notifyId")
        account_no = _required(fields, "acctNo")
        order_no = _required(fields, "merOrderId")
        status = _required(fields, "status")
        try:
            amount_fen = notified_fen(
                fen_from_digits(_required(fields, "totalAmount")), "totalAmount"
            )
        except ValueError as error:
            raise MalformedMessage(f"totalAmount: {error}") from None
        event: BankEvent
        if status == REFUNDED:
            event = DebitBooked(
                account_no=account_no,
                amount_fen=amount_fen,
                description=f"ums {status} of order {order_no} ({amount_fen} fen)",
                bank_reference=fields.get("seqId") or None,
                order_no=order_no,
            )
            return Notification(message_id, (event,))
        if status != PAID:
            event = Notice(account_no, f"ums status {status} for order {order_no}")
            return Notification(message_id, (event,))
        bank_reference = _required(fields, "seqId")
        try:
            paid_at = pay_time(_required(fields, "payTime"))
        except ValueError as error:
            raise MalformedMessage(f"payTime: {error}") from None
        event = PaymentReceived(
            account_no=account_no,
            order_no=order_no,
            amount_fen=amount_fen,
            bank_reference=bank_reference,
            paid_at=paid_at,
            channel_order_id=fields.get("targetOrderId") or None,
        )
        return Notification(message_id, (event,))

    def reply(self, kind: ReplyKind) -> Reply:
        return _REPLIES[kind]

    # --- Statements --------------------------------------------------------------------------

    def verify_statement(self, config: UmsConfig, request: InboundRequest) -> Verified:
        signature = request.headers.get("x-file-signature", "")
        if not signature:
            raise VerificationFailed(SignatureProblem.missing, "no X-File-Signature header")
        if not verify_file(request.body, signature, config.bank_public_key_pem):
            raise VerificationFailed(
                SignatureProblem.bad, "X-File-Signature does not verify with the bank's key"
            )
        return Verified()  # the scheme has no nonce or timestamp

    def read_statement(self, chunks: Iterable[bytes]) -> StatementReader:
        return UmsStatement(chunks)

    # --- Instructions ------------------------------------------------------------------------

    def submit_request(
        self, config: UmsConfig, instruction: OutboundInstruction, now: datetime
    ) -> OutboundRequest:
        if instruction.amount_fen <= 0:
            raise ValueError(f"instruction {instruction.id} has no positive amount")
        amount = str(instruction.amount_fen)
        if instruction.kind == InstructionKind.payout:
            if instruction.payee_account_no is None:
                raise ValueError(f"payout {instruction.id} has no payee account")
            return self._request(
                config,
                PAYOUT,
                instruction.id,
                now,
                {
                    "acctNo": instruction.escrow_account_no,
                    "payAmt": amount,
                    "targetAcctNo": instruction.payee_account_no,
                    "targetAcctName": instruction.payee_name,
                    "memo": instruction.memo,
                },
            )
        # A refund goes back by the payment's original route, which the bank finds by these two.
        if not (instruction.payment_channel_order_id and instruction.payment_reference):
            raise ValueError(
                f"refund {instruction.id} lacks the payment's targetOrderId or seqId "
                "needed to refund by the original route"
            )
        return self._request(
            config,
            REFUND,
            instruction.id,
            now,
            {
                "acctNo": instruction.escrow_account_no,
                "refundAmt": amount,
                "origTargetOrderId": instruction.payment_channel_order_id,
                "origSeqId": instruction.payment_reference,
                "memo": instruction.memo,
            },
        )

    def read_submit(self, config: UmsConfig, response: BankResponse) -> SubmitAnswer:
        try:
            payload = _signed_answer(config, response)
        except _NoAnswer as error:
            return SubmitAnswer(SubmitStatus.unclear, detail=str(error))
        code, message = payload["respCode"], _text(payload.get("respMsg"))
        if code == ACCEPTED:
            status = SubmitStatus.accepted
        elif code == DUPLICATE:
            status = SubmitStatus.duplicate
        elif code == IN_DOUBT:
            status = SubmitStatus.unclear
        else:  # FAN00004 (balance), FAN00002, FAN00003 and any other code: refused
            status = SubmitStatus.refused
        return SubmitAnswer(status, code=code, detail=message)

    def query_request(
        self, config: UmsConfig, instruction: OutboundInstruction, now: datetime
    ) -> OutboundRequest:
        # srcReqId is unique forever, so the query cannot reuse the instruction's id: it gets a
        # fresh random one (32 characters of [0-9a-f]) and names the instruction in origSrcReqId.
        query_id = secrets.token_hex(16)
        return self._request(config, QUERY, query_id, now, {"origSrcReqId": instruction.id})

    def read_query(
        self, config: UmsConfig, instruction: OutboundInstruction, response: BankResponse
    ) -> QueryAnswer:
        try:
            payload = _signed_answer(config, response)
        except _NoAnswer as error:
            return QueryAnswer(QueryStatus.unclear, detail=str(error))
        code, message = payload["respCode"], _text(payload.get("respMsg"))
        if code == NOT_FOUND:
            return QueryAnswer(QueryStatus.not_found, code=code, detail=message)
        if code != ACCEPTED:
            return QueryAnswer(QueryStatus.unclear, code=code, detail=message)
        try:
            order = _order_of(payload.get("orderSet"), instruction)
        except _NoAnswer as error:
            return QueryAnswer(QueryStatus.unclear, code=code, detail=str(error))
        status = _text(order.get("status"))
        mapped = ORDER_STATUSES.get(status or "", QueryStatus.processing)
        return QueryAnswer(mapped, code=code, detail=f"order status {status}")

    # --- Helpers -----------------------------------------------------------------------------

    def _request(
        self,
        config: UmsConfig,
        trans_code: str,
        src_req_id: str,
        now: datetime,
        fields: dict[str, str],
    ) -> OutboundRequest:
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        local = now.astimezone(SHANGHAI)
        payload: dict[str, str] = {
            "transCode": trans_code,
            "verNo": "100",
            "srcReqDate": local.strftime("%Y%m%d"),
            "srcReqTime": local.strftime("%H%M%S"),
            "srcReqId": src_req_id,
            "channelId": "043",
            "groupId": config.group_id,
            **fields,
        }
        payload["signature"] = sign_payload(payload, config.private_key_pem.get_secret_value())
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return OutboundRequest(
            method="POST",
            path=PATH + trans_code,
            headers={"Content-Type": "application/json"},
            body=body,
        )


def _text(value: Any) -> str | None:
    """A scalar the spec sends as a string, tolerating a bare JSON integer for it."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _signed_answer(config: UmsConfig, response: BankResponse) -> dict[str, Any]:
    """The JSON of a response signed by the bank, with a respCode. A response that is anything
    less is no answer at all (spec 2): the caller must not act on what it says."""
    if response.status_code != 200:
        raise _NoAnswer(f"HTTP {response.status_code}")
    try:
        payload = json_object(response.body)
    except ValueError as error:
        raise _NoAnswer(f"not a JSON object: {error}") from None
    if not payload.get("signature"):
        raise _NoAnswer("response has no signature")
    if not verify_payload(payload, config.bank_public_key_pem):
        raise _NoAnswer("response signature does not verify with the bank's key")
    if not isinstance(payload.get("respCode"), str) or not payload["respCode"]:
        raise _NoAnswer("response has no respCode")
    return payload


def _order_of(order_set: Any, instruction: OutboundInstruction) -> dict[str, Any]:
    """The orderSet entry for `instruction`: the one whose orderNo is its id, else the only one."""
    if isinstance(order_set, str):  # some answers carry the array as a JSON string
        try:
            order_set = json.loads(order_set)
        except ValueError:
            raise _NoAnswer("orderSet is not JSON") from None
    if not isinstance(order_set, list) or not all(isinstance(o, dict) for o in order_set):
        raise _NoAnswer("orderSet is not an array of objects")
    matching = [o for o in order_set if _text(o.get("orderNo")) == instruction.id]
    if len(matching) == 1:
        order = matching[0]
    elif not matching and len(order_set) == 1:
        order = order_set[0]
    else:
        raise _NoAnswer(f"orderSet has {len(matching)} of {len(order_set)} entries for it")
    amount = _text(order.get("orderAmt"))
    if amount is not None and amount != str(instruction.amount_fen):
        # Never take a settlement of a different amount for ours: leave it for an operator.
        raise _NoAnswer(f"orderAmt {amount} is not the {instruction.amount_fen} fen instructed")
    return order
