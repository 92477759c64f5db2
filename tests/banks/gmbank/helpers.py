"""What the gmbank tests share: a fixed clock, golden messages, and signing as the bank signs (with
the adapter's own signing.py, which the bank simulator uses too)."""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from app.banks.gmbank.signing import new_nonce, sign_headers, timestamp_ms
from app.kit.clock import SHANGHAI
from app.kit.signatures import sm2_generate_private_key_hex, sm2_public_key_hex

GOLDEN = Path(__file__).parent / "golden"
APP_ID = "PG0000000001"
NOW = datetime(2026, 11, 28, 15, 30, 5, tzinfo=SHANGHAI)


@dataclass(frozen=True)
class KeyPair:
    private: str
    public: str


def key_pair() -> KeyPair:
    private = sm2_generate_private_key_hex()
    return KeyPair(private, sm2_public_key_hex(private))


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def lower(headers: dict[str, str]) -> dict[str, str]:
    """As the server hands headers to the adapter: names in lower case."""
    return {name.lower(): value for name, value in headers.items()}


def bank_headers(
    bank_key: KeyPair, body: bytes, sent_at: datetime = NOW, app_id: str = APP_ID
) -> dict[str, str]:
    return sign_headers(app_id, bank_key.private, body, timestamp_ms(sent_at), new_nonce())
