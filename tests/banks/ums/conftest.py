"""Keys and configuration for the ums tests, made fresh for each run (no key is ever committed)."""

from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.banks.ums import UmsConfig

NOTIFY_KEY = "k3yFromTheUmsPortal"
NEXT_NOTIFY_KEY = "r0tatedNotifyKey2025"
GROUP_ID = "G00042"


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_pem: str


def _key_pair() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return KeyPair(private_pem, public_pem)


@pytest.fixture(scope="session")
def our_key() -> KeyPair:
    return _key_pair()


@pytest.fixture(scope="session")
def bank_key() -> KeyPair:
    return _key_pair()


@pytest.fixture(scope="session")
def next_bank_key() -> KeyPair:
    """The key the bank rotates to."""
    return _key_pair()


@pytest.fixture(scope="session")
def stranger_key() -> KeyPair:
    return _key_pair()


@pytest.fixture(scope="session")
def config(our_key: KeyPair, bank_key: KeyPair) -> UmsConfig:
    return UmsConfig.model_validate(
        {
            "md5_key": NOTIFY_KEY,
            "group_id": GROUP_ID,
            "private_key_pem": our_key.private_pem,
            "bank_public_key_pem": bank_key.public_pem,
        }
    )
