"""The ums signature schemes (spec ums.md), usable in both directions: the adapter verifies with
them, and the bank simulator and the tests sign with them as the bank would.

- Notifications (section 1): a digest of the sorted form fields with the notify key appended.
- Instructions and their responses (section 2): SHA256withRSA over a `k=v&...` string of the
  top-level JSON fields.
- Statement files (section 3): SHA256withRSA over the file's exact bytes.
"""

import json
from collections.abc import Mapping, Sequence
from typing import Any

from app.kit.signatures import hex_digest, rsa_sign, rsa_verify

NOTIFY_SIGN_TYPES = ("MD5", "SHA256")


def _byte_order(key: str) -> bytes:
    return key.encode("utf-8")


def notify_signature(fields: Mapping[str, str], key: str, sign_type: str) -> str:
    """Section 1: every field but `sign` whose value is not empty, sorted by key in byte order,
    `k=v` joined by `&`, the notify key appended with no separator, hashed with `sign_type`
    ("MD5" or "SHA256"), as upper-case hex."""
    if sign_type not in NOTIFY_SIGN_TYPES:
        raise ValueError(f"unknown ums signType: {sign_type!r}")
    text = notify_string(fields) + key
    return hex_digest(sign_type, text.encode("utf-8"))


def notify_string(fields: Mapping[str, str]) -> str:
    """What a notification's signature covers, before the key: `k=v` of every field but `sign`
    whose value is not empty, sorted by key in byte order, joined by `&`."""
    # Code point order is UTF-8 byte order (the encoding keeps it), so the keys sort as they are,
    # without encoding each one (a test holds the two orders equal).
    signed = sorted(k for k, v in fields.items() if k != "sign" and v != "")
    return "&".join(f"{k}={fields[k]}" for k in signed)


def _is_empty(value: Any) -> bool:
    # "Not empty": a null, an empty string, an empty array or object is left out of the signature.
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)


def _signed_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    # Arrays and objects as compact JSON in the order sent, non-ASCII as is; any other scalar
    # (which the spec does not send) as its JSON text, so `true` is not Python's `True`.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def signing_string(payload: Mapping[str, Any]) -> bytes:
    """Section 2: the bytes an instruction or a response is signed over."""
    signed = sorted(
        (k for k, v in payload.items() if k != "signature" and not _is_empty(v)), key=_byte_order
    )
    return "&".join(f"{k}={_signed_value(payload[k])}" for k in signed).encode("utf-8")


def sign_payload(payload: Mapping[str, Any], private_key_pem: str) -> str:
    """The `signature` of a section 2 message: base64 SHA256withRSA of its signing string."""
    return rsa_sign(private_key_pem, signing_string(payload))


def verify_payload(payload: Mapping[str, Any], public_key_pems: Sequence[str]) -> bool:
    """Whether the payload's own `signature` verifies with any of the keys (keys rotate)."""
    signature = payload.get("signature")
    if not isinstance(signature, str) or not signature:
        return False
    data = signing_string(payload)
    return any(rsa_verify(pem, data, signature) for pem in public_key_pems)


def sign_file(data: bytes, private_key_pem: str) -> str:
    """The `X-File-Signature` of a statement file: base64 SHA256withRSA of its exact bytes."""
    return rsa_sign(private_key_pem, data)


def verify_file(data: bytes, signature_b64: str, public_key_pems: Sequence[str]) -> bool:
    if not signature_b64:
        return False
    return any(rsa_verify(pem, data, signature_b64) for pem in public_key_pems)
