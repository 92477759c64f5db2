"""What the ums bank does, for the tests: sign its notifications and responses with
`app.banks.ums.signing`, exactly as the spec tells the bank to."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote_plus

from app.banks.protocol import BankResponse, InboundRequest
from app.banks.ums.signing import notify_signature, sign_payload

GOLDEN = Path(__file__).parent / "golden"
RECEIVED_AT = datetime(2024, 3, 1, 2, 16, tzinfo=UTC)


def golden_form(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def golden_json(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((GOLDEN / name).read_text("utf-8"))
    return value


def form_of(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode(), keep_blank_values=True))


def encode_form(fields: dict[str, str]) -> bytes:
    return "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in fields.items()).encode()


def sign_form(body: bytes, key: str, sign_type: str | None = None) -> bytes:
    """The body with `&sign=...` appended, as the bank sends it; the signType is the body's own
    unless `sign_type` forces a different hash."""
    fields = form_of(body)
    sign = notify_signature(fields, key, sign_type or fields["signType"])
    return body + b"&sign=" + sign.encode()


def with_fields(body: bytes, **changes: str | None) -> bytes:
    """The unsigned body with fields replaced (None removes one)."""
    fields = form_of(body)
    for name, value in changes.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return encode_form(fields)


def inbound(body: bytes) -> InboundRequest:
    return InboundRequest(
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=body,
        received_at=RECEIVED_AT,
    )


def signed_body(payload: dict[str, Any], private_key_pem: str) -> bytes:
    signed = {**payload, "signature": sign_payload(payload, private_key_pem)}
    return json.dumps(signed, ensure_ascii=False, separators=(",", ":")).encode()


def response(body: bytes, status_code: int = 200) -> BankResponse:
    return BankResponse(
        status_code=status_code,
        headers={"content-type": "application/json;charset=UTF-8"},
        body=body,
        received_at=RECEIVED_AT,
    )
