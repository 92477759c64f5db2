"""The simulator in-process: its calls to the service go to a tiny fake service over an ASGI
transport, and the tests talk to it as the service (signing as the service would) and as an
operator (the /sim control API). Keys are made here, for this run only."""

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request, Response

from app.banks.gmbank.signing import new_nonce, sign_headers, timestamp_ms
from app.banks.iso20022.signing import signature_header
from app.banks.ums.signing import sign_payload
from app.kit.clock import SHANGHAI, utcnow
from app.kit.signatures import sm2_generate_private_key_hex, sm2_public_key_hex
from bank_simulator.app import create_simulator
from bank_simulator.config import SimulatorConfig

UMS, ISO, GM = "ums1", "iso1", "gm1"
ACCOUNT = "6200000000000001"


def _rsa_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@dataclass(frozen=True)
class Keys:
    """Both sides' keys: what the simulator is configured with, and the service's halves."""

    md5_key: str
    bank_rsa_private: str
    bank_rsa_public: str
    service_rsa_private: str
    service_rsa_public: str
    secret_to_service: str
    secret_from_service: str
    app_id: str
    bank_sm2_private: str
    bank_sm2_public: str
    service_sm2_private: str
    service_sm2_public: str


@pytest.fixture(scope="session")
def keys() -> Keys:
    return make_keys()


def make_keys() -> Keys:
    bank_rsa_private, bank_rsa_public = _rsa_pair()
    service_rsa_private, service_rsa_public = _rsa_pair()
    bank_sm2, service_sm2 = sm2_generate_private_key_hex(), sm2_generate_private_key_hex()
    return Keys(
        md5_key=secrets.token_hex(16),
        bank_rsa_private=bank_rsa_private,
        bank_rsa_public=bank_rsa_public,
        service_rsa_private=service_rsa_private,
        service_rsa_public=service_rsa_public,
        secret_to_service=secrets.token_hex(32),
        secret_from_service=secrets.token_hex(32),
        app_id="PG0001",
        bank_sm2_private=bank_sm2,
        bank_sm2_public=sm2_public_key_hex(bank_sm2),
        service_sm2_private=service_sm2,
        service_sm2_public=sm2_public_key_hex(service_sm2),
    )


def bank_configs(keys: Keys, ums_sign_type: str = "SHA256") -> list[dict[str, Any]]:
    return [
        {
            "slug": UMS,
            "adapter": "ums",
            "md5_key": keys.md5_key,
            "sign_type": ums_sign_type,
            "bank_private_key_pem": keys.bank_rsa_private,
            "service_public_key_pem": keys.service_rsa_public,
            "group_id": "G001",
            "mid": "898310000000001",
            "tid": "00000001",
        },
        {
            "slug": ISO,
            "adapter": "iso20022",
            "secret_to_service": keys.secret_to_service,
            "secret_from_service": keys.secret_from_service,
        },
        {
            "slug": GM,
            "adapter": "gmbank",
            "app_id": keys.app_id,
            "bank_private_key_hex": keys.bank_sm2_private,
            "service_public_key_hex": keys.service_sm2_public,
        },
    ]


@dataclass(frozen=True)
class Received:
    slug: str
    kind: str  # "notify" | "statements"
    headers: dict[str, str]
    body: bytes


def success_reply(slug: str) -> Response:
    """Each bank's success reply to a notification, per its spec."""
    if slug == UMS:
        return Response(b"SUCCESS", media_type="text/plain")
    if slug == GM:
        return Response(b'{"code":"0000","msg":"OK"}', media_type="application/json")
    return Response(b"", status_code=200)


@dataclass
class FakeService:
    """Records what arrives and answers each bank's success reply, after `fail_next` failures."""

    received: list[Received] = field(default_factory=list)
    fail_next: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/banks/{slug}/notify")
        async def notify(slug: str, request: Request) -> Response:
            body = await request.body()
            self.received.append(Received(slug, "notify", dict(request.headers), body))
            if self.fail_next:
                self.fail_next -= 1
                return Response(b"FAILED", status_code=503)
            return success_reply(slug)

        @app.post("/v1/banks/{slug}/statements")
        async def statements(slug: str, request: Request) -> dict[str, str]:
            body = await request.body()
            self.received.append(Received(slug, "statements", dict(request.headers), body))
            return {"run_id": "run-1"}

        return app

    def notifications(self, slug: str) -> list[Received]:
        return [r for r in self.received if r.slug == slug and r.kind == "notify"]


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
async def sim(keys: Keys, service: FakeService) -> AsyncIterator[httpx.AsyncClient]:
    config = SimulatorConfig.model_validate(
        {
            "service_url": "http://service",
            "banks": bank_configs(keys),
            "delivery_backoff_seconds": 0.001,
        }
    )
    app = create_simulator(config, transport=httpx.ASGITransport(app=service.app()))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client,
    ):
        for slug in (UMS, ISO, GM):
            opened = await client.post(
                "/sim/accounts",
                json={"slug": slug, "account_no": ACCOUNT, "name": "托管户", "balance_fen": 0},
            )
            assert opened.status_code == 201, opened.text
        yield client


def today() -> str:
    return datetime.now(SHANGHAI).date().isoformat()


async def balance(sim: httpx.AsyncClient, slug: str) -> dict[str, Any]:
    response = await sim.get(f"/sim/accounts/{slug}/{ACCOUNT}")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


async def fund(
    sim: httpx.AsyncClient, slug: str, amount_fen: int, order_no: str = "ORD1", **payment: Any
) -> dict[str, Any]:
    """A payment into the account; its references (bank_reference, channel_order_id) are what a
    refund of it quotes."""
    paid = await sim.post(
        "/sim/payments",
        json={
            "slug": slug,
            "account_no": ACCOUNT,
            "order_no": order_no,
            "amount_fen": amount_fen,
            **payment,
        },
    )
    assert paid.status_code == 200, paid.text
    result: dict[str, Any] = paid.json()
    return result


# --- the service's side of an instruction, signed as the service would ---


async def ums_call(
    sim: httpx.AsyncClient, keys: Keys, trans_code: str, fields: dict[str, str], sign: bool = True
) -> dict[str, Any]:
    now = utcnow().astimezone(SHANGHAI)
    payload: dict[str, Any] = {
        "transCode": trans_code,
        "verNo": "100",
        "srcReqDate": f"{now:%Y%m%d}",
        "srcReqTime": f"{now:%H%M%S}",
        "channelId": "043",
        "groupId": "G001",
        **fields,
    }
    payload["signature"] = sign_payload(payload, keys.service_rsa_private) if sign else "AAAA"
    response = await sim.post(
        f"/banks/{UMS}/channel/Business/UnifyMulti/{trans_code}",
        content=json.dumps(payload, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def ums_payout(instruction_id: str, amount_fen: int) -> dict[str, str]:
    return {
        "srcReqId": instruction_id,
        "acctNo": ACCOUNT,
        "payAmt": str(amount_fen),
        "targetAcctNo": "3100000000000099",
        "targetAcctName": "某某培训学校",
        "memo": "课时费",
    }


def pain001(
    instruction_id: str, amount: str, remittance: str = "PAYOUT", creditor_account: bool = True
) -> bytes:
    account = (
        "<CdtrAcct><Id><Othr><Id>3100000000000099</Id></Othr></Id></CdtrAcct>"
        if creditor_account
        else ""
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09">
  <CstmrCdtTrfInitn>
    <GrpHdr><MsgId>M{instruction_id}</MsgId><CreDtTm>2026-11-28T10:00:00+08:00</CreDtTm>
      <NbOfTxs>1</NbOfTxs><InitgPty><Nm>PrepaidGuard</Nm></InitgPty></GrpHdr>
    <PmtInf>
      <PmtInfId>P{instruction_id}</PmtInfId><PmtMtd>TRF</PmtMtd>
      <ReqdExctnDt><Dt>2026-11-28</Dt></ReqdExctnDt>
      <Dbtr><Nm>托管户</Nm></Dbtr>
      <DbtrAcct><Id><Othr><Id>{ACCOUNT}</Id></Othr></Id></DbtrAcct>
      <DbtrAgt><FinInstnId><Othr><Id>BANK</Id></Othr></FinInstnId></DbtrAgt>
      <CdtTrfTxInf>
        <PmtId><EndToEndId>{instruction_id}</EndToEndId></PmtId>
        <Amt><InstdAmt Ccy="CNY">{amount}</InstdAmt></Amt>
        <Cdtr><Nm>某某培训学校</Nm></Cdtr>
        {account}
        <RmtInf><Ustrd>{remittance}</Ustrd></RmtInf>
      </CdtTrfTxInf>
    </PmtInf>
  </CstmrCdtTrfInitn>
</Document>""".encode()


async def iso_call(
    sim: httpx.AsyncClient, keys: Keys, body: bytes, secret: str | None = None
) -> httpx.Response:
    header = signature_header(secret or keys.secret_from_service, body, int(utcnow().timestamp()))
    return await sim.post(
        f"/banks/{ISO}/payments",
        content=body,
        headers={"Content-Type": "application/xml", "X-Signature": header},
    )


def gm_headers(keys: Keys, body: bytes, nonce: str | None = None) -> dict[str, str]:
    return sign_headers(
        keys.app_id,
        keys.service_sm2_private,
        body,
        timestamp_ms(utcnow()),
        nonce or new_nonce(),
    )


def gm_transfer(
    instruction_id: str, amount: str, kind: str = "PAYOUT", orig_serial_no: str | None = None
) -> bytes:
    payload = {
        "instrId": instruction_id,
        "type": kind,
        "fromAcct": ACCOUNT,
        "toAcct": "3100000000000099",
        "toName": "某某培训学校",
        "amount": amount,
        "origSerialNo": orig_serial_no,
        "memo": "课时费",
    }
    return json.dumps(payload, ensure_ascii=False).encode()


async def gm_call(
    sim: httpx.AsyncClient, keys: Keys, body: bytes, nonce: str | None = None
) -> httpx.Response:
    headers = {"Content-Type": "application/json", **gm_headers(keys, body, nonce)}
    return await sim.post(f"/banks/{GM}/api/v1/transfer", content=body, headers=headers)


async def gm_query(sim: httpx.AsyncClient, keys: Keys, instruction_id: str) -> httpx.Response:
    return await sim.get(
        f"/banks/{GM}/api/v1/transfer/{instruction_id}", headers=gm_headers(keys, b"")
    )
