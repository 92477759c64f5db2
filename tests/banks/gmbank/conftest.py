"""Keys made afresh for each run (the bank's pair and ours), our config, and makers of requests and
responses signed as the bank signs them."""

from collections.abc import Callable
from datetime import datetime

import pytest

from app.banks.gmbank.config import GmbankConfig
from app.banks.protocol import BankResponse, InboundRequest
from tests.banks.gmbank.helpers import APP_ID, NOW, KeyPair, bank_headers, key_pair, lower

SignedRequest = Callable[..., InboundRequest]
SignedResponse = Callable[..., BankResponse]


@pytest.fixture(scope="session")
def bank_key() -> KeyPair:
    return key_pair()


@pytest.fixture(scope="session")
def our_key() -> KeyPair:
    return key_pair()


@pytest.fixture(scope="session")
def config(bank_key: KeyPair, our_key: KeyPair) -> GmbankConfig:
    return GmbankConfig.model_validate(
        {
            "app_id": APP_ID,
            "private_key_hex": our_key.private,
            "bank_public_key_hex": bank_key.public,
        }
    )


@pytest.fixture
def signed_request(bank_key: KeyPair) -> SignedRequest:
    """A notification as the bank posts it, received at NOW."""

    def make(body: bytes, sent_at: datetime = NOW) -> InboundRequest:
        return InboundRequest(
            headers=lower(bank_headers(bank_key, body, sent_at)), body=body, received_at=NOW
        )

    return make


@pytest.fixture
def signed_response(bank_key: KeyPair) -> SignedResponse:
    """The bank's signed answer to one of our requests, received at NOW."""

    def make(body: bytes, status_code: int = 200) -> BankResponse:
        headers = lower(bank_headers(bank_key, body))
        headers["content-type"] = "application/json; charset=utf-8"
        return BankResponse(status_code=status_code, headers=headers, body=body, received_at=NOW)

    return make
