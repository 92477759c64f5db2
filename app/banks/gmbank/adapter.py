"""The gmbank adapter: a domestic bank's direct-connect JSON API signed with SM2/SM3
(/work/shared/banks/gmbank.md). Results are pushed as notifications; the query is asked only after
a submission went unanswered."""

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import BaseModel

from app.banks.gmbank import messages
from app.banks.gmbank.config import GmbankConfig
from app.banks.gmbank.signing import check_headers, new_nonce, sign_headers, timestamp_ms
from app.banks.gmbank.statement import GmbankStatement
from app.banks.protocol import (
    BankResponse,
    InboundRequest,
    MalformedMessage,
    Notification,
    OutboundInstruction,
    OutboundRequest,
    QueryAnswer,
    QueryStatus,
    Reply,
    ReplyKind,
    StatementReader,
    SubmitAnswer,
    SubmitStatus,
    VerificationFailed,
    Verified,
)
from app.kit.money import yuan
from app.models.instruction import InstructionKind

NONCE_TTL_SECONDS = 600  # the spec refuses a nonce seen in the last 10 minutes
TRANSFER_PATH = "/api/v1/transfer"
JSON_UTF8 = "application/json; charset=utf-8"

_REPLIES = {
    ReplyKind.ok: (200, {"code": "0000", "msg": "OK"}),
    ReplyKind.bad_signature: (401, {"code": "9001", "msg": "signature verification failed"}),
    ReplyKind.malformed: (400, {"code": "9002", "msg": "malformed message"}),
    ReplyKind.refused: (400, {"code": "9002", "msg": "not an account or instruction of this bank"}),
}
_KINDS = {InstructionKind.payout: "PAYOUT", InstructionKind.refund: "REFUND"}
_SUBMIT_CODES = {"0000": SubmitStatus.accepted, "1001": SubmitStatus.duplicate}
_QUERY_STATUSES = {
    "PROCESSING": QueryStatus.processing,
    "SUCCESS": QueryStatus.settled,
    "FAIL": QueryStatus.failed,
    "RETURNED": QueryStatus.returned,
}


def _compact_json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _text_or_none(document: dict[str, Any], field: str) -> str | None:
    value = document.get(field)
    return value if isinstance(value, str) else None


class GmbankAdapter:
    name: ClassVar[str] = "gmbank"
    config_model: ClassVar[type[BaseModel]] = GmbankConfig
    results_by_query: ClassVar[bool] = False

    def verify(self, config: GmbankConfig, request: InboundRequest) -> Verified:
        nonce = check_headers(
            request.headers,
            request.body,
            config.bank_public_key_hex,
            config.app_id,
            now=request.received_at,
        )
        return Verified(nonce=nonce, nonce_ttl_seconds=NONCE_TTL_SECONDS)

    def parse_notification(self, request: InboundRequest) -> Notification:
        return messages.parse(request.body)

    def reply(self, kind: ReplyKind) -> Reply:
        status_code, document = _REPLIES[kind]
        return Reply(
            status_code=status_code,
            body=json.dumps(document, ensure_ascii=False).encode("utf-8"),
            media_type="application/json",
        )

    def verify_statement(self, config: GmbankConfig, request: InboundRequest) -> Verified:
        return self.verify(config, request)  # signed as any message, nonce and all

    def read_statement(self, chunks: Iterable[bytes]) -> StatementReader:
        return GmbankStatement(chunks)

    def _signed(
        self, config: GmbankConfig, method: str, path: str, body: bytes, now: datetime
    ) -> OutboundRequest:
        headers = sign_headers(
            config.app_id,
            config.private_key_hex.get_secret_value(),
            body,
            timestamp_ms(now),
            new_nonce(),
        )
        if body:
            headers["Content-Type"] = JSON_UTF8
        return OutboundRequest(method=method, path=path, headers=headers, body=body)

    def submit_request(
        self, config: GmbankConfig, instruction: OutboundInstruction, now: datetime
    ) -> OutboundRequest:
        if instruction.amount_fen <= 0:
            raise ValueError(f"instruction {instruction.id} has no amount to transfer")
        refund = instruction.kind == InstructionKind.refund
        if refund and not instruction.payment_reference:
            # The bank pays a refund back against the original credit, which it knows by serialNo.
            raise ValueError(f"refund {instruction.id} does not quote the payment's serialNo")
        body = _compact_json(
            {
                "instrId": instruction.id,
                "type": _KINDS[InstructionKind(instruction.kind)],
                "fromAcct": instruction.escrow_account_no,
                "toAcct": instruction.payee_account_no,
                "toName": instruction.payee_name,
                "amount": yuan(instruction.amount_fen),
                "origSerialNo": instruction.payment_reference if refund else None,
                "memo": instruction.memo,
            }
        )
        return self._signed(config, "POST", TRANSFER_PATH, body, now)

    def _verified_json(
        self, config: GmbankConfig, response: BankResponse
    ) -> tuple[dict[str, Any] | None, str | None]:
        """The response's JSON object once its signature holds, or None and why not. A gateway's
        5xx page carries no bank signature, so it is unclear before anything else."""
        if response.status_code >= 500:
            return None, f"HTTP {response.status_code}"
        try:
            check_headers(
                response.headers,
                response.body,
                config.bank_public_key_hex,
                config.app_id,
                now=response.received_at,
            )
            document = messages.read_json(response.body)
        except (VerificationFailed, MalformedMessage) as error:
            return None, error.detail
        if not isinstance(document, dict):
            return None, "the response is not a JSON object"
        return document, None

    def read_submit(self, config: GmbankConfig, response: BankResponse) -> SubmitAnswer:
        document, problem = self._verified_json(config, response)
        if document is None:
            return SubmitAnswer(SubmitStatus.unclear, detail=problem)
        code = document.get("code")
        if not isinstance(code, str) or not code:
            return SubmitAnswer(SubmitStatus.unclear, detail="the response has no code")
        status = _SUBMIT_CODES.get(code, SubmitStatus.refused)
        detail = _text_or_none(document, "acceptNo" if code == "0000" else "msg")
        return SubmitAnswer(status, code=code, detail=detail)

    def query_request(
        self, config: GmbankConfig, instruction: OutboundInstruction, now: datetime
    ) -> OutboundRequest:
        path = f"{TRANSFER_PATH}/{quote(instruction.id, safe='')}"
        return self._signed(config, "GET", path, b"", now)

    def read_query(
        self, config: GmbankConfig, instruction: OutboundInstruction, response: BankResponse
    ) -> QueryAnswer:
        document, problem = self._verified_json(config, response)
        if document is None:
            return QueryAnswer(QueryStatus.unclear, detail=problem)
        code = _text_or_none(document, "code")
        # The spec is silent on an unknown id; the bank answers a signed 404 (code "1004").
        if response.status_code == 404:
            return QueryAnswer(
                QueryStatus.not_found, code=code, detail=_text_or_none(document, "msg")
            )
        status = document.get("status")
        if not 200 <= response.status_code < 300 or not isinstance(status, str):
            return QueryAnswer(
                QueryStatus.unclear, code=code, detail=_text_or_none(document, "msg")
            )
        return QueryAnswer(
            _QUERY_STATUSES.get(status, QueryStatus.processing),
            code=code,
            detail=_text_or_none(document, "failReason") or f"status {status}",
        )
