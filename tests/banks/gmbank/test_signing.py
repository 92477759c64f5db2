"""The X-GM-* signature on what the bank sends: any change to a signed message is caught, and a
genuine message is refused when it comes too late."""

from datetime import timedelta
from typing import Any

import pytest

from app.banks.gmbank import ADAPTER
from app.banks.gmbank.config import GmbankConfig
from app.banks.gmbank.signing import (
    check_headers,
    new_nonce,
    sign_headers,
    signing_string,
    timestamp_ms,
)
from app.banks.protocol import InboundRequest, SignatureProblem, VerificationFailed
from app.kit.signatures import sm2_verify
from tests.banks.gmbank.conftest import SignedRequest
from tests.banks.gmbank.helpers import APP_ID, GOLDEN, NOW, KeyPair, golden, key_pair, lower

GOLDEN_NAMES = sorted(path.name for path in GOLDEN.glob("*.json"))


def _problem(config: GmbankConfig, request: InboundRequest) -> SignatureProblem:
    with pytest.raises(VerificationFailed) as failure:
        ADAPTER.verify(config, request)
    return failure.value.problem


def _replace(request: InboundRequest, **changes: Any) -> InboundRequest:
    headers = dict(request.headers)
    body = changes.pop("body", request.body)
    headers.update(changes)
    return InboundRequest(headers=headers, body=body, received_at=request.received_at)


def test_the_signed_string_is_app_id_timestamp_nonce_and_raw_body() -> None:
    assert signing_string("APP", 1764315000000, "N" * 16, b'{"a":1}\n') == (
        b'APP\n1764315000000\nNNNNNNNNNNNNNNNN\n{"a":1}\n'
    )
    assert signing_string("APP", "1764315000000", "N" * 16, b"") == (
        b"APP\n1764315000000\nNNNNNNNNNNNNNNNN\n"
    )


def test_signed_headers_carry_a_verifiable_sm2_signature(bank_key: KeyPair) -> None:
    headers = sign_headers(APP_ID, bank_key.private, b"{}", 1764315000000, "abcdefghijklmnop")
    assert set(headers) == {"X-GM-AppId", "X-GM-Timestamp", "X-GM-Nonce", "X-GM-Signature"}
    assert headers["X-GM-AppId"] == APP_ID
    assert headers["X-GM-Timestamp"] == "1764315000000"
    assert headers["X-GM-Nonce"] == "abcdefghijklmnop"
    assert len(headers["X-GM-Signature"]) == 128
    signed = signing_string(APP_ID, 1764315000000, "abcdefghijklmnop", b"{}")
    assert sm2_verify(bank_key.public, signed, headers["X-GM-Signature"])


def test_timestamp_is_milliseconds_since_the_epoch() -> None:
    # 2026-11-28 15:30:05 in Shanghai is 07:30:05 UTC.
    assert timestamp_ms(NOW) == 1795851005000
    assert timestamp_ms(NOW + timedelta(microseconds=1999)) == 1795851005001


def test_nonces_are_fresh_and_in_the_banks_alphabet() -> None:
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    for nonce in nonces:
        assert 16 <= len(nonce) <= 32
        assert nonce.isascii() and nonce.isalnum()


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_one_changed_byte_of_the_body_fails(
    name: str, config: GmbankConfig, signed_request: SignedRequest
) -> None:
    request = signed_request(golden(name))
    for position in range(len(request.body)):
        body = bytearray(request.body)
        body[position] ^= 0x01
        assert _problem(config, _replace(request, body=bytes(body))) == SignatureProblem.bad
    assert _problem(config, _replace(request, body=request.body + b" ")) == SignatureProblem.bad
    assert _problem(config, _replace(request, body=request.body[:-1])) == SignatureProblem.bad


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_one_changed_character_of_the_signature_fails(
    name: str, config: GmbankConfig, signed_request: SignedRequest
) -> None:
    request = signed_request(golden(name))
    signature = request.headers["x-gm-signature"]
    for position in range(len(signature)):
        # Another hex digit (not just the other case of the same one), then a non-hex character.
        digit = format((int(signature[position], 16) + 1) % 16, "x")
        for replacement in (digit, "g"):
            changed = signature[:position] + replacement + signature[position + 1 :]
            tampered = _replace(request, **{"x-gm-signature": changed})
            assert _problem(config, tampered) == SignatureProblem.bad


def test_a_signature_in_upper_case_hex_verifies(
    config: GmbankConfig, signed_request: SignedRequest
) -> None:
    request = signed_request(golden("credit_success.json"))
    upper = _replace(request, **{"x-gm-signature": request.headers["x-gm-signature"].upper()})
    assert ADAPTER.verify(config, upper).nonce == request.headers["x-gm-nonce"]


@pytest.mark.parametrize("header", ["x-gm-appid", "x-gm-timestamp", "x-gm-nonce", "x-gm-signature"])
def test_a_changed_signed_header_fails(
    header: str, config: GmbankConfig, signed_request: SignedRequest
) -> None:
    request = signed_request(golden("credit_success.json"))
    value = request.headers[header]
    changed = value[:-1] + ("1" if value[-1] != "1" else "2")
    assert _problem(config, _replace(request, **{header: changed})) == SignatureProblem.bad


@pytest.mark.parametrize("header", ["x-gm-appid", "x-gm-timestamp", "x-gm-nonce", "x-gm-signature"])
def test_a_missing_or_empty_header_is_a_missing_signature(
    header: str, config: GmbankConfig, signed_request: SignedRequest
) -> None:
    request = signed_request(golden("credit_success.json"))
    headers = {name: value for name, value in request.headers.items() if name != header}
    missing = InboundRequest(headers=headers, body=request.body, received_at=NOW)
    assert _problem(config, missing) == SignatureProblem.missing
    assert _problem(config, _replace(request, **{header: ""})) == SignatureProblem.missing


def test_header_names_are_read_in_any_case(bank_key: KeyPair, config: GmbankConfig) -> None:
    body = golden("credit_success.json")
    headers = sign_headers(APP_ID, bank_key.private, body, timestamp_ms(NOW), new_nonce())
    for names in (headers, lower(headers), {name.upper(): v for name, v in headers.items()}):
        assert check_headers(names, body, [bank_key.public], APP_ID, NOW) == headers["X-GM-Nonce"]


def test_a_message_signed_by_another_key_fails(config: GmbankConfig) -> None:
    body = golden("credit_success.json")
    stranger = key_pair()
    headers = lower(sign_headers(APP_ID, stranger.private, body, timestamp_ms(NOW), new_nonce()))
    request = InboundRequest(headers=headers, body=body, received_at=NOW)
    assert _problem(config, request) == SignatureProblem.bad


def test_during_a_rotation_either_bank_key_verifies(our_key: KeyPair) -> None:
    old, new = key_pair(), key_pair()
    config = GmbankConfig(
        app_id=APP_ID, private_key_hex=our_key.private, bank_public_key_hex=[old.public, new.public]
    )
    body = golden("credit_success.json")
    for key in (old, new):
        headers = lower(sign_headers(APP_ID, key.private, body, timestamp_ms(NOW), new_nonce()))
        request = InboundRequest(headers=headers, body=body, received_at=NOW)
        assert ADAPTER.verify(config, request).nonce == headers["x-gm-nonce"]


def test_a_message_for_another_app_id_fails(bank_key: KeyPair, config: GmbankConfig) -> None:
    body = golden("credit_success.json")
    headers = sign_headers("SOMEONEELSE", bank_key.private, body, timestamp_ms(NOW), new_nonce())
    request = InboundRequest(headers=lower(headers), body=body, received_at=NOW)
    assert _problem(config, request) == SignatureProblem.bad
    # Without an app id to hold it to, the signature alone decides.
    assert check_headers(headers, body, [bank_key.public], None, NOW) == headers["X-GM-Nonce"]


@pytest.mark.parametrize(
    "nonce", ["a" * 15, "a" * 33, ""], ids=["15 characters", "33 characters", "empty"]
)
def test_a_nonce_of_the_wrong_length_fails(
    nonce: str, bank_key: KeyPair, config: GmbankConfig
) -> None:
    body = golden("credit_success.json")
    headers = lower(sign_headers(APP_ID, bank_key.private, body, timestamp_ms(NOW), nonce))
    request = InboundRequest(headers=headers, body=body, received_at=NOW)
    expected = SignatureProblem.missing if nonce == "" else SignatureProblem.bad
    assert _problem(config, request) == expected


@pytest.mark.parametrize("length", [16, 32])
def test_nonces_of_16_and_32_characters_verify(
    length: int, bank_key: KeyPair, config: GmbankConfig
) -> None:
    body = golden("credit_success.json")
    nonce = new_nonce()[:length]
    headers = lower(sign_headers(APP_ID, bank_key.private, body, timestamp_ms(NOW), nonce))
    request = InboundRequest(headers=headers, body=body, received_at=NOW)
    assert ADAPTER.verify(config, request).nonce == nonce


@pytest.mark.parametrize(
    "timestamp", ["1795851005.000", "-1795851005000", "0x1A", "\uff11\uff12\uff13", "1" * 17]
)
def test_a_timestamp_that_is_not_milliseconds_fails(
    timestamp: str, bank_key: KeyPair, config: GmbankConfig
) -> None:
    body = golden("credit_success.json")
    nonce = new_nonce()
    signature = sign_headers(APP_ID, bank_key.private, body, 0, nonce)["X-GM-Signature"]
    headers = {
        "x-gm-appid": APP_ID,
        "x-gm-timestamp": timestamp,
        "x-gm-nonce": nonce,
        "x-gm-signature": signature,
    }
    request = InboundRequest(headers=headers, body=body, received_at=NOW)
    assert _problem(config, request) == SignatureProblem.bad


@pytest.mark.parametrize(
    ("offset", "fresh"),
    [
        (timedelta(seconds=0), True),
        (timedelta(seconds=-300), True),
        (timedelta(seconds=300), True),
        (timedelta(seconds=-300, milliseconds=-1), False),
        (timedelta(seconds=300, milliseconds=1), False),
        (timedelta(days=-1), False),
        (timedelta(hours=1), False),
    ],
)
def test_only_a_message_within_300_seconds_of_now_is_fresh(
    offset: timedelta, fresh: bool, config: GmbankConfig, signed_request: SignedRequest
) -> None:
    request = signed_request(golden("credit_success.json"), sent_at=NOW + offset)
    if fresh:
        assert ADAPTER.verify(config, request).nonce == request.headers["x-gm-nonce"]
    else:
        assert _problem(config, request) == SignatureProblem.expired


def test_a_stale_forgery_is_a_bad_signature_not_an_expired_one(
    config: GmbankConfig, signed_request: SignedRequest
) -> None:
    request = signed_request(golden("credit_success.json"), sent_at=NOW - timedelta(hours=1))
    assert _problem(config, _replace(request, body=request.body + b" ")) == SignatureProblem.bad
