"""The iso20022 bank: camt.054 and pain.002 in, pain.001 out, HMAC-signed both ways."""

from collections.abc import Iterable
from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel

from app.banks.iso20022 import messages
from app.banks.iso20022.config import Iso20022Config
from app.banks.iso20022.signing import check_signature, signature_header
from app.banks.iso20022.statement import IsoStatement
from app.banks.protocol import (
    BankResponse,
    InboundRequest,
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
    Verified,
)

_REPLY_STATUS = {
    ReplyKind.ok: 200,
    ReplyKind.bad_signature: 401,
    ReplyKind.malformed: 400,
    ReplyKind.refused: 400,
}
# 4xx codes that say "not now" rather than "no": the bank did not take the instruction, and a
# resend with the same EndToEndId is safe (409 if it had), so they are unclear, not refused.
_TRY_AGAIN = {408, 429}


class Iso20022Adapter:
    name: ClassVar[str] = "iso20022"
    config_model: ClassVar[type[BaseModel]] = Iso20022Config
    results_by_query: ClassVar[bool] = False  # pain.002 and camt.054 are pushed

    def verify(self, config: Iso20022Config, request: InboundRequest) -> Verified:
        check_signature(
            request.headers.get("x-signature"),
            request.body,
            [secret.get_secret_value() for secret in config.inbound_secrets],
            now=request.received_at,
        )
        return Verified()

    def parse_notification(self, request: InboundRequest) -> Notification:
        return messages.parse(request.body)

    def reply(self, kind: ReplyKind) -> Reply:
        return Reply(status_code=_REPLY_STATUS[kind], body=b"", media_type="application/xml")

    def verify_statement(self, config: Iso20022Config, request: InboundRequest) -> Verified:
        return self.verify(config, request)  # a camt.053 is signed as any message

    def read_statement(self, chunks: Iterable[bytes]) -> StatementReader:
        return IsoStatement(chunks)

    def submit_request(
        self, config: Iso20022Config, instruction: OutboundInstruction, now: datetime
    ) -> OutboundRequest:
        body = messages.credit_transfer(instruction, now)
        secret = config.outbound_secret.get_secret_value()
        return OutboundRequest(
            method="POST",
            path="/payments",
            headers={
                "Content-Type": "application/xml",
                "X-Signature": signature_header(secret, body, int(now.timestamp())),
            },
            body=body,
        )

    def read_submit(self, config: Iso20022Config, response: BankResponse) -> SubmitAnswer:
        # The spec signs messages, not HTTP answers: the status code over our own TLS connection
        # is the whole answer.
        code = response.status_code
        detail = response.body[:500].decode("utf-8", errors="replace") or None
        if code == 202:
            return SubmitAnswer(SubmitStatus.accepted, code="202")
        if code == 409:
            return SubmitAnswer(SubmitStatus.duplicate, code="409", detail=detail)
        if 400 <= code < 500 and code not in _TRY_AGAIN:
            return SubmitAnswer(SubmitStatus.refused, code=str(code), detail=detail)
        return SubmitAnswer(SubmitStatus.unclear, code=str(code), detail=detail)

    def query_request(
        self, config: Iso20022Config, instruction: OutboundInstruction, now: datetime
    ) -> OutboundRequest | None:
        # No status query: resending the same EndToEndId is the query (409: the earlier one stands).
        return None

    def read_query(
        self, config: Iso20022Config, instruction: OutboundInstruction, response: BankResponse
    ) -> QueryAnswer:
        return QueryAnswer(QueryStatus.unclear, detail="the iso20022 bank has no status query")
