"""A gmbank for tests: its keys, an institution holding an escrow account at it, and messages
signed as the bank signs them (the inbox's tests use it)."""

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from app.banks.gmbank import signing
from app.db.unit import Database
from app.kit.clock import SHANGHAI, utcnow
from app.kit.money import yuan
from app.ledger import service as ledger
from tests.factories import World, auth


@dataclass
class GmBank:
    slug: str
    app_id: str
    private_key_hex: str
    world: World
    service_config: dict

    def signed(self, message: dict, nonce: str | None = None, at: datetime | None = None):
        body = json.dumps(message, ensure_ascii=False).encode()
        moment = at or utcnow()
        headers = signing.sign_headers(
            self.app_id,
            self.private_key_hex,
            body,
            int(moment.timestamp() * 1000),
            nonce or signing.new_nonce(),
        )
        return body, {**headers, "Content-Type": "application/json; charset=utf-8"}

    def credit(self, order_no: str, amount_fen: int, **fields) -> dict:
        return {
            "msgId": f"M{uuid.uuid4().hex[:20]}",
            "msgType": "CREDIT",
            "acctNo": self.world.escrow_account_no,
            "serialNo": f"S{uuid.uuid4().hex[:20]}",
            "amount": yuan(amount_fen),
            "currency": "CNY",
            "orderNo": order_no,
            "instrId": None,
            "status": "SUCCESS",
            "failReason": None,
            "txnTime": utcnow().astimezone(SHANGHAI).strftime("%Y%m%d%H%M%S"),
            "payerName": "张*",
            "payerAcct": "6222********1234",
            **fields,
        }


async def enrollment_awaiting_payment(client, gm: GmBank) -> dict:
    today = utcnow().astimezone(SHANGHAI).date()
    headers = auth(gm.world.institution_key)
    course = await client.post(
        "/v1/courses",
        headers=headers,
        json={
            "name": "Chess",
            "category": "non_subject",
            "lesson_price_fen": 10_000,
            "starts_on": today.isoformat(),
            "ends_on": (today + timedelta(days=60)).isoformat(),
        },
    )
    enrollment = await client.post(
        "/v1/enrollments",
        headers=headers,
        json={
            "course_id": course.json()["id"],
            "student": {"name": "Han Meimei", "id_number": "110105201502020022"},
            "payer": {"name": "Han parent", "phone": "13800138000"},
            "lessons": 10,
            "loan_funded": False,
        },
    )
    assert enrollment.status_code == 201, enrollment.text
    return enrollment.json()


async def totals(engine, gm: GmBank) -> dict:
    async with engine.connect() as connection:
        return await ledger.balances_by_kind(connection, gm.world.institution_id)


async def count(engine, model, *where) -> int:
    return await Database(engine).run(
        lambda session: session.scalar(select(func.count()).select_from(model).where(*where))
    )
