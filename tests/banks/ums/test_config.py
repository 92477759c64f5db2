"""What an operator sees when setting a ums bank's configuration."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from app.banks.ums import UmsConfig
from tests.banks.ums.conftest import KeyPair


def _config(our_key: KeyPair, bank_key: KeyPair, **changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "md5_key": "notify-key",
        "group_id": "G00042",
        "private_key_pem": our_key.private_pem,
        "bank_public_key_pem": bank_key.public_pem,
    }
    values.update(changes)
    return values


def test_single_credentials_are_stored_as_lists(our_key: KeyPair, bank_key: KeyPair) -> None:
    config = UmsConfig.model_validate(_config(our_key, bank_key))
    assert [key.get_secret_value() for key in config.md5_key] == ["notify-key"]
    assert config.bank_public_key_pem == [bank_key.public_pem]
    assert config.private_key_pem.get_secret_value() == our_key.private_pem


def test_rotation_lists_are_accepted(
    our_key: KeyPair, bank_key: KeyPair, next_bank_key: KeyPair
) -> None:
    config = UmsConfig.model_validate(
        _config(
            our_key,
            bank_key,
            md5_key=["old", "new"],
            bank_public_key_pem=[bank_key.public_pem, next_bank_key.public_pem],
        )
    )
    assert [key.get_secret_value() for key in config.md5_key] == ["old", "new"]
    assert len(config.bank_public_key_pem) == 2


def test_secrets_never_show(our_key: KeyPair, bank_key: KeyPair) -> None:
    config = UmsConfig.model_validate(_config(our_key, bank_key))
    shown = repr(config) + str(config) + config.model_dump_json()
    assert "notify-key" not in shown
    assert "PRIVATE KEY" not in shown


def _encrypted_private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass"),
    ).decode()


def _ec_public_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.mark.parametrize(
    "field, value",
    [
        ("md5_key", ""),
        ("md5_key", []),
        ("group_id", ""),
        ("private_key_pem", "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"),
        ("private_key_pem", "encrypted"),
        ("private_key_pem", "bank public key"),
        ("bank_public_key_pem", "not a pem"),
        ("bank_public_key_pem", []),
        ("bank_public_key_pem", "ec key"),
        ("bank_public_key_pem", "our private key"),
        ("inbound_secrets", ["x"]),  # another bank's field: refused, not ignored
    ],
)
def test_bad_configuration_is_refused_without_echoing_it(
    our_key: KeyPair, bank_key: KeyPair, field: str, value: object
) -> None:
    value = (
        {
            "encrypted": _encrypted_private_pem(),
            "bank public key": bank_key.public_pem,
            "ec key": _ec_public_pem(),
            "our private key": our_key.private_pem,
        }.get(value, value)
        if isinstance(value, str)
        else value
    )
    with pytest.raises(ValidationError) as error:
        UmsConfig.model_validate(_config(our_key, bank_key, **{field: value}))
    assert error.value.errors()[0]["loc"][0] == field
    assert "PRIVATE KEY" not in str(error.value)
    assert "notify-key" not in str(error.value)
