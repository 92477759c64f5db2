"""Matching test keys for a bank and the simulator playing it: what the service is configured
with (PUT /v1/banks/{slug}) and what the simulator holds. Made fresh on every call, for tests, the
demo and benchmarks; never a real key."""

import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.kit import signatures


def rsa_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@dataclass(frozen=True)
class BankKeys:
    """Matching halves: what the service is configured with (PUT /v1/banks/{slug}) and what the
    simulator playing that bank holds."""

    adapter: str
    service_config: dict[str, Any]
    simulator_config: dict[str, Any]


def bank_keys(adapter: str) -> BankKeys:
    if adapter == "ums":
        ours, ours_public = rsa_pair()
        bank, bank_public = rsa_pair()
        md5_key = secrets.token_hex(16)
        group = f"G{secrets.randbelow(10**8):08d}"
        return BankKeys(
            adapter,
            {
                "md5_key": md5_key,
                "group_id": group,
                "private_key_pem": ours,
                "bank_public_key_pem": bank_public,
            },
            {
                "md5_key": md5_key,
                "bank_private_key_pem": bank,
                "service_public_key_pem": ours_public,
                "group_id": group,
                "mid": "898310048161234",
                "tid": "00000001",
            },
        )
    if adapter == "iso20022":
        to_service, from_service = secrets.token_hex(32), secrets.token_hex(32)
        return BankKeys(
            adapter,
            {"inbound_secrets": [to_service], "outbound_secret": from_service},
            {"secret_to_service": to_service, "secret_from_service": from_service},
        )
    if adapter == "gmbank":
        ours, bank = (
            signatures.sm2_generate_private_key_hex(),
            signatures.sm2_generate_private_key_hex(),
        )
        app_id = f"APP{secrets.randbelow(10**6):06d}"
        return BankKeys(
            adapter,
            {
                "app_id": app_id,
                "private_key_hex": ours,
                "bank_public_key_hex": signatures.sm2_public_key_hex(bank),
            },
            {
                "app_id": app_id,
                "bank_private_key_hex": bank,
                "service_public_key_hex": signatures.sm2_public_key_hex(ours),
            },
        )
    raise ValueError(adapter)
