"""Real HTTP for tests where a bank is involved: the service and the bank simulator each served by
uvicorn on a free loopback port, in the test's event loop, and test keys for each bank made here
(never committed)."""

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from app.kit import signatures


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` (whose lifespan the caller runs) and yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    # The test runner owns the signals; uvicorn must not take SIGINT from it.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


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
