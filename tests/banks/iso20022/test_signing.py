import hashlib
import hmac
from datetime import datetime

import pytest

from app.banks.iso20022.signing import check_signature, signature_header
from app.banks.protocol import SignatureProblem, VerificationFailed

from .conftest import NOW, new_secret

BODY = b'<?xml version="1.0"?><Document/>'
T = int(NOW.timestamp())


def problem(
    header: str | None, secrets: list[str], body: bytes = BODY, now: datetime = NOW
) -> SignatureProblem:
    with pytest.raises(VerificationFailed) as failure:
        check_signature(header, body, secrets, now)
    return failure.value.problem


def test_header_is_t_and_hmac_sha256_of_t_dot_body() -> None:
    secret = new_secret()
    expected = hmac.new(secret.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signature_header(secret, BODY, T) == f"t={T},v1={expected}"


def test_a_header_signed_with_the_secret_verifies() -> None:
    secret = new_secret()
    check_signature(signature_header(secret, BODY, T), BODY, [secret], NOW)


def test_any_configured_secret_verifies_while_secrets_rotate() -> None:
    old, new = new_secret(), new_secret()
    check_signature(signature_header(old, BODY, T), BODY, [new, old], NOW)
    check_signature(signature_header(new, BODY, T), BODY, [new, old], NOW)


def test_any_v1_of_several_may_match_while_the_bank_rotates() -> None:
    ours, theirs = new_secret(), new_secret()
    v1_theirs = signature_header(theirs, BODY, T).split(",")[1]
    v1_ours = signature_header(ours, BODY, T).split(",")[1]
    check_signature(f"t={T},{v1_theirs},{v1_ours}", BODY, [ours], NOW)
    check_signature(f"t={T}, {v1_ours}, {v1_theirs}, v0=abc", BODY, [ours], NOW)


def test_another_secret_is_bad() -> None:
    assert problem(signature_header(new_secret(), BODY, T), [new_secret()]) is SignatureProblem.bad


def test_another_body_is_bad() -> None:
    secret = new_secret()
    header = signature_header(secret, BODY, T)
    assert problem(header, [secret], body=BODY + b" ") is SignatureProblem.bad


def test_a_changed_timestamp_is_bad() -> None:
    secret = new_secret()
    header = signature_header(secret, BODY, T).replace(f"t={T}", f"t={T + 1}")
    assert problem(header, [secret]) is SignatureProblem.bad


def test_upper_case_hex_is_not_the_signature() -> None:
    secret = new_secret()
    t, v1 = signature_header(secret, BODY, T).split(",")
    assert problem(f"{t},{v1.upper().replace('V1=', 'v1=')}", [secret]) is SignatureProblem.bad


@pytest.mark.parametrize("header", [None, ""])
def test_no_header_is_missing(header: str | None) -> None:
    assert problem(header, [new_secret()]) is SignatureProblem.missing


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "v1=abcdef",
        f"t={T}",
        f"t={T},v1=",
        "t=,v1=ab",
        f"t=-{T},v1=ab",
        f"t={T}.5,v1=ab",
        "t=1e9,v1=ab",
        f"t={T},t={T},v1=ab",
        f"t={T};v1=ab",
        f"t={T},,v1=ab",
    ],
)
def test_a_malformed_header_is_bad(header: str) -> None:
    assert problem(header, [new_secret()]) is SignatureProblem.bad


@pytest.mark.parametrize("seconds", [300, -300, 0])
def test_within_300_seconds_is_fresh(seconds: int) -> None:
    secret = new_secret()
    check_signature(signature_header(secret, BODY, T + seconds), BODY, [secret], NOW)


@pytest.mark.parametrize("seconds", [301, -301, 86400])
def test_beyond_300_seconds_is_expired(seconds: int) -> None:
    secret = new_secret()
    header = signature_header(secret, BODY, T + seconds)
    assert problem(header, [secret]) is SignatureProblem.expired


def test_a_stale_forgery_is_bad_not_expired() -> None:
    """`expired` is said only of a message the bank really signed."""
    header = signature_header(new_secret(), BODY, T - 3600)
    assert problem(header, [new_secret()]) is SignatureProblem.bad
