"""Secrets made per test run, golden messages, and requests signed as the bank would sign them."""

import secrets
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.banks.iso20022 import ADAPTER
from app.banks.iso20022.config import Iso20022Config
from app.banks.iso20022.signing import signature_header
from app.banks.protocol import InboundRequest, Notification

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_FILES = sorted(path.name for path in GOLDEN.glob("*.xml"))
NOW = datetime(2024, 5, 1, 2, 20, tzinfo=UTC)


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def new_secret() -> str:
    return secrets.token_hex(32)


@pytest.fixture
def bank_secret() -> str:
    """The secret the bank signs notifications with (our inbound secret)."""
    return new_secret()


@pytest.fixture
def config(bank_secret: str) -> Iso20022Config:
    return Iso20022Config(inbound_secrets=[bank_secret], outbound_secret=new_secret())


def signed(body: bytes, secret: str, at: datetime = NOW) -> InboundRequest:
    header = signature_header(secret, body, int(at.timestamp()))
    return InboundRequest(headers={"x-signature": header}, body=body, received_at=at)


def parse(body: bytes) -> Notification:
    return ADAPTER.parse_notification(InboundRequest(headers={}, body=body, received_at=NOW))
