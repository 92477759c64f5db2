"""The signature rules of the spec, on hand-written examples: what is signed, in which order."""

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.banks.ums.signing import (
    notify_signature,
    notify_string,
    sign_file,
    sign_payload,
    signing_string,
    verify_file,
    verify_payload,
)
from tests.banks.ums.conftest import KeyPair


def test_notify_signature_sorts_by_byte_order_skips_empty_and_sign_and_appends_key() -> None:
    fields = {"b": "2", "a": "1", "B": "3", "memo": "", "sign": "whatever"}
    # "B" (0x42) sorts before "a" (0x61); the empty memo and the sign itself are not signed.
    signed = "B=3&a=1&b=2" + "KEY"
    assert (
        notify_signature(fields, "KEY", "MD5") == hashlib.md5(signed.encode()).hexdigest().upper()
    )
    assert (
        notify_signature(fields, "KEY", "SHA256")
        == hashlib.sha256(signed.encode()).hexdigest().upper()
    )


# Any field name a form body can carry: every code point but the surrogates, which UTF-8 cannot
# encode (the body is decoded strictly), astral ones included.
_NAMES = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6)


@given(fields=st.dictionaries(_NAMES.filter(lambda name: name != "sign"), _NAMES, max_size=8))
def test_notify_string_orders_fields_by_their_utf8_bytes(fields: dict[str, str]) -> None:
    by_bytes = sorted(fields, key=lambda name: name.encode("utf-8"))
    assert notify_string(fields) == "&".join(f"{name}={fields[name]}" for name in by_bytes)


def test_notify_string_orders_an_astral_name_after_a_bmp_one() -> None:
    # U+FF21 is EF BC A1 in UTF-8 and U+1F600 is F0 9F 98 80: it comes first, as its code point
    # does (in UTF-16 it would not: FF21 > D83D).
    fields = {"\U0001f600": "1", "\uff21": "2", "a": "3"}
    assert notify_string(fields) == "a=3&\uff21=2&\U0001f600=1"


def test_notify_signature_hashes_utf8() -> None:
    expected = hashlib.md5("name=张三K".encode()).hexdigest().upper()
    assert notify_signature({"name": "张三"}, "K", "MD5") == expected


@pytest.mark.parametrize("sign_type", ["md5", "SHA1", "RSA2", ""])
def test_notify_signature_refuses_an_unknown_sign_type(sign_type: str) -> None:
    with pytest.raises(ValueError):
        notify_signature({"a": "1"}, "K", sign_type)


def test_signing_string_writes_arrays_compactly_in_the_order_sent() -> None:
    payload = {
        "transCode": "202008",
        "orderSet": [{"orderNo": "A1", "status": "2", "remark": "退票"}],
        "memo": "",
        "extra": None,
        "nothing": [],
        "signature": "ignored",
    }
    assert signing_string(payload) == (
        'orderSet=[{"orderNo":"A1","status":"2","remark":"退票"}]&transCode=202008'.encode()
    )


def test_payload_signature_verifies_with_the_counterpart_key_only(
    bank_key: KeyPair, next_bank_key: KeyPair, stranger_key: KeyPair
) -> None:
    payload = {"respCode": "99999999", "respMsg": "成功"}
    signed = {**payload, "signature": sign_payload(payload, bank_key.private_pem)}
    assert verify_payload(signed, [bank_key.public_pem])
    assert verify_payload(signed, [next_bank_key.public_pem, bank_key.public_pem])  # rotation
    assert not verify_payload(signed, [stranger_key.public_pem])
    assert not verify_payload({**signed, "respCode": "99999998"}, [bank_key.public_pem])
    assert not verify_payload({**signed, "respMsg": "成功!"}, [bank_key.public_pem])
    assert not verify_payload(payload, [bank_key.public_pem])  # no signature
    assert not verify_payload({**payload, "signature": "not base64!"}, [bank_key.public_pem])
    # Fields left out of the signature by the spec may change without breaking it.
    assert verify_payload({**signed, "memo": ""}, [bank_key.public_pem])


def test_file_signature_covers_every_byte(bank_key: KeyPair, stranger_key: KeyPair) -> None:
    data = b"H|G00042|6222020200112233445|20240301|100|200|0\nT|0|0\n"
    signature = sign_file(data, bank_key.private_pem)
    assert verify_file(data, signature, [stranger_key.public_pem, bank_key.public_pem])
    assert not verify_file(data, signature, [stranger_key.public_pem])
    assert not verify_file(data, "", [bank_key.public_pem])
    for index in range(len(data)):
        tampered = bytearray(data)
        tampered[index] ^= 0x01
        assert not verify_file(bytes(tampered), signature, [bank_key.public_pem])
