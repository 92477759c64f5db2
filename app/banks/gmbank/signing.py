"""gmbank's signature scheme (spec "Authentication"), the same in both directions: SM2 with SM3 over
`<appId>\\n<timestamp>\\n<nonce>\\n<raw body>`, carried in four X-GM-* headers. The bank simulator and
the tests sign with these functions exactly as the bank would."""

import re
import secrets
import string
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from app.banks.protocol import SignatureProblem, VerificationFailed
from app.kit.signatures import sm2_sign, sm2_verify

APP_ID = "X-GM-AppId"
TIMESTAMP = "X-GM-Timestamp"
NONCE = "X-GM-Nonce"
SIGNATURE = "X-GM-Signature"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NONCE_ALPHABET = string.ascii_letters + string.digits
# Milliseconds since the epoch; 16 digits reach far past any real clock and keep int() cheap.
_TIMESTAMP = re.compile(r"[0-9]{1,16}")
# r then s, 32 bytes each. Checked here because int(..., 16) would also take "0x", "_" or spaces.
_SIGNATURE = re.compile(r"[0-9A-Fa-f]{128}")


def signing_string(app_id: str, timestamp_ms: int | str, nonce: str, body: bytes) -> bytes:
    return f"{app_id}\n{timestamp_ms}\n{nonce}\n".encode() + body


def sign_headers(
    app_id: str, private_key_hex: str, body: bytes, timestamp_ms: int, nonce: str
) -> dict[str, str]:
    signature = sm2_sign(private_key_hex, signing_string(app_id, timestamp_ms, nonce, body))
    return {APP_ID: app_id, TIMESTAMP: str(timestamp_ms), NONCE: nonce, SIGNATURE: signature}


def new_nonce() -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(32))


def timestamp_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware moment, in integers (no float rounding)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def check_headers(
    headers: Mapping[str, str],
    body: bytes,
    public_keys_hex: Sequence[str],
    app_id: str | None,
    now: datetime,
    tolerance_seconds: int = 300,
) -> str:
    """Verify a signed gmbank message and return its nonce (the caller refuses a nonce seen again);
    raise VerificationFailed. Any one of `public_keys_hex` may have signed, so the bank can rotate."""
    lowered = {name.lower(): value for name, value in headers.items()}
    values = {}
    for name in (APP_ID, TIMESTAMP, NONCE, SIGNATURE):
        value = lowered.get(name.lower())
        if not value:
            raise VerificationFailed(SignatureProblem.missing, f"header {name} is missing")
        values[name] = value
    sent_app_id, sent_timestamp, nonce, signature = (
        values[APP_ID],
        values[TIMESTAMP],
        values[NONCE],
        values[SIGNATURE],
    )
    if not 16 <= len(nonce) <= 32:
        raise VerificationFailed(SignatureProblem.bad, "the nonce is not 16 to 32 characters")
    if not _TIMESTAMP.fullmatch(sent_timestamp):
        raise VerificationFailed(SignatureProblem.bad, "the timestamp is not milliseconds")
    if app_id is not None and sent_app_id != app_id:
        raise VerificationFailed(SignatureProblem.bad, "the app id is not ours")
    if not _SIGNATURE.fullmatch(signature):
        raise VerificationFailed(SignatureProblem.bad, "the signature is not 128 hex characters")
    signed = signing_string(sent_app_id, sent_timestamp, nonce, body)
    if not any(sm2_verify(key, signed, signature) for key in public_keys_hex):
        raise VerificationFailed(SignatureProblem.bad, "no bank key verifies the signature")
    # Checked after the signature, so "expired" always names a genuine message that came too late
    # (a replay, or a clock out of step), never a forgery. Microseconds keep the boundary exact.
    age_us = (now - _EPOCH) // timedelta(microseconds=1) - int(sent_timestamp) * 1000
    if abs(age_us) > tolerance_seconds * 1_000_000:
        raise VerificationFailed(
            SignatureProblem.expired, f"the timestamp is {age_us // 1_000_000} s from now"
        )
    return nonce
