"""The iso20022 bank's signature, in both directions: header `X-Signature: t=<unix seconds>,v1=<hex>`,
the hex being HMAC-SHA256 with the shared secret over `<t>.<raw body bytes>` (as Stripe signs its
webhooks). The bank simulator and the tests sign with these functions too."""

import re
from collections.abc import Sequence
from datetime import datetime

from app.banks.protocol import SignatureProblem, VerificationFailed
from app.kit.signatures import equal, hmac_sha256_hex

_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    return hmac_sha256_hex(secret.encode(), f"{timestamp}.".encode() + body)


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """The `X-Signature` value for `body` sent at `timestamp` (unix seconds)."""
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


def _parse(header: str) -> tuple[int, list[str]]:
    """The timestamp and every `v1` of a header; other schemes are ignored (as Stripe's are), so a
    bank may add one without breaking us. VerificationFailed(bad) when it is not a header at all."""
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not value:
            raise VerificationFailed(SignatureProblem.bad, "malformed X-Signature header")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures.append(value)
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]) or not signatures:
        raise VerificationFailed(
            SignatureProblem.bad, "X-Signature needs one numeric t and at least one v1"
        )
    return int(timestamps[0]), signatures


def check_signature(
    header: str | None,
    body: bytes,
    secrets: Sequence[str],
    now: datetime,
    tolerance_seconds: int = 300,
) -> None:
    """Accept when any `v1` matches any of `secrets` (both sides rotate) and `t` is within
    `tolerance_seconds` of `now`; raise VerificationFailed otherwise. The signature is checked before
    the time, so `expired` is only ever said of a message the bank really signed."""
    if not header:
        raise VerificationFailed(SignatureProblem.missing, "no X-Signature header")
    timestamp, signatures = _parse(header)
    expected = [_digest(secret, body, timestamp) for secret in secrets]
    matched = False
    for signature in signatures:
        for digest in expected:
            # No early exit: the time taken does not tell which value or secret matched.
            matched |= equal(signature, digest)
    if not matched:
        raise VerificationFailed(SignatureProblem.bad, "no v1 matches a configured secret")
    if abs(now.timestamp() - timestamp) > tolerance_seconds:
        raise VerificationFailed(
            SignatureProblem.expired,
            f"signed at t={timestamp}, more than {tolerance_seconds} s from now",
        )
