"""SM2/SM3 against the published vectors and an independent implementation (gmssl), so the bank's
own SM2 stack, whatever it is, reads our signatures and we read its."""

import pytest
from gmssl import func, sm2, sm3
from tongsuopy.crypto import hashes

from app.kit.signatures import (
    SM2_DEFAULT_USER_ID,
    sm2_generate_private_key_hex,
    sm2_public_key_hex,
    sm2_sign,
    sm2_verify,
)

SM3_ABC = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"  # GB/T 32905, A.1

# GM/T 0003.5 (GB/T 32918.5) Annex A: the recommended curve, user id 1234567812345678.
ANNEX_PRIVATE = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8"
ANNEX_PUBLIC = (
    "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
    "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
)
ANNEX_MESSAGE = b"message digest"
ANNEX_SIGNATURE = (
    "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
    "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
)


def test_sm3_of_abc_is_the_published_digest() -> None:
    digest = hashes.Hash(hashes.SM3())
    digest.update(b"abc")
    assert digest.finalize().hex() == SM3_ABC
    assert sm3.sm3_hash(func.bytes_to_list(b"abc")) == SM3_ABC


def test_the_published_signature_verifies() -> None:
    assert SM2_DEFAULT_USER_ID == b"1234567812345678"
    assert sm2_verify(ANNEX_PUBLIC, ANNEX_MESSAGE, ANNEX_SIGNATURE)
    assert sm2_verify(ANNEX_PUBLIC.lower(), ANNEX_MESSAGE, ANNEX_SIGNATURE.lower())
    assert not sm2_verify(ANNEX_PUBLIC, b"message digesT", ANNEX_SIGNATURE)


def test_the_published_key_pair() -> None:
    assert sm2_public_key_hex(ANNEX_PRIVATE) == ANNEX_PUBLIC.lower()


def _gmssl(private_key_hex: str) -> sm2.CryptSM2:
    crypt = sm2.CryptSM2(private_key=private_key_hex, public_key="")
    # Set after construction: gmssl's constructor drops a "04" prefix with lstrip("04"), which also
    # eats the leading 0s and 4s of an x that happens to start with "04" (one key in 256).
    crypt.public_key = sm2_public_key_hex(private_key_hex)
    return crypt


@pytest.mark.parametrize("message", [b"", b"message digest", "支付通知".encode() * 100])
def test_our_signature_verifies_with_gmssl(message: bytes) -> None:
    private = sm2_generate_private_key_hex()
    signature = sm2_sign(private, message)
    assert len(signature) == 128
    assert _gmssl(private).verify_with_sm3(signature, message)
    assert not _gmssl(private).verify_with_sm3(signature, message + b"x")


@pytest.mark.parametrize("message", [b"", b"message digest", "支付通知".encode() * 100])
def test_a_gmssl_signature_verifies_with_ours(message: bytes) -> None:
    private = sm2_generate_private_key_hex()
    signature = _gmssl(private).sign_with_sm3(message)
    assert sm2_verify(sm2_public_key_hex(private), message, signature)
    assert not sm2_verify(sm2_public_key_hex(private), message + b"x", signature)


def test_a_key_whose_x_starts_with_04_works_both_ways() -> None:
    private = next(
        key
        for key in iter(sm2_generate_private_key_hex, None)
        if sm2_public_key_hex(key).startswith("04")
    )
    assert _gmssl(private).verify_with_sm3(sm2_sign(private, b"m"), b"m")
    assert sm2_verify(sm2_public_key_hex(private), b"m", _gmssl(private).sign_with_sm3(b"m"))


def test_signatures_are_randomised_but_all_verify() -> None:
    private = sm2_generate_private_key_hex()
    first, second = sm2_sign(private, b"same"), sm2_sign(private, b"same")
    assert first != second
    assert sm2_verify(sm2_public_key_hex(private), b"same", first)
    assert sm2_verify(sm2_public_key_hex(private), b"same", second)
