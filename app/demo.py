"""A living demo jurisdiction, made through the real API on an empty database, so that a new user
can try every role from /docs at once.

It makes one jurisdiction, two institutions (one frozen), courses, and enrollments in every state:
awaiting payment, active with lessons confirmed, pending and disputed, refunded, and cancelled; one
payout; and returns the keys it made (`prepaid-guard serve` writes them to `demo-keys.json`).
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from app.auth.service import issue_key
from app.db.unit import Database
from app.kit.clock import utcnow
from app.models import Jurisdiction
from app.models.api_key import Role
from app.payments.service import BankPayment, credit_payment

JURISDICTION = "DEMO-COUNTY"


@dataclass
class DemoKeys:
    admin: str
    regulator: str
    institution: str
    parent_active: str
    parent_refunded: str
    institution_id: str
    active_enrollment_id: str


class DemoFailed(RuntimeError):
    pass


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 300:
        raise DemoFailed(f"{response.request.method} {response.request.url.path}: {response.text}")
    return response.json()


async def seed(app: FastAPI) -> DemoKeys | None:
    """Seed the demo unless the database already has a jurisdiction. Returns the keys it made."""
    db = Database(app.state.engine, app.state.settings)
    if await db.run(lambda session: session.scalar(select(Jurisdiction.code).limit(1))):
        return None
    secret = app.state.settings.secret_key.get_secret_value()

    async def admin_key(session: Any) -> str:
        _, key = await issue_key(session, secret, role=Role.admin, name="demo operator")
        return key

    admin = await db.run(admin_key)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:

        async def call(method: str, path: str, key: str, body: Any = None) -> Any:
            return _ok(
                await client.request(
                    method, path, json=body, headers={"Authorization": f"Bearer {key}"}
                )
            )

        await call(
            "POST",
            "/v1/jurisdictions",
            admin,
            {
                "code": JURISDICTION,
                "name": "示范区教育局 (demo county)",
                "profile": {"min_balance_floor_fen": 30_000, "release_lag_days": 0},
            },
        )
        school = await call(
            "POST",
            "/v1/institutions",
            admin,
            {
                "name": "星光艺术培训学校 (demo)",
                "uscc": "91110108MA01ABCD1E",
                "license_no": "DEMO-001",
                "category": "non_subject",
                "jurisdiction_code": JURISDICTION,
                "bank_slug": "ums",
                "escrow_account_no": "6222000000000001",
                "basic_account_no": "6228000000000001",
                "basic_account_name": "星光艺术培训学校",
            },
        )
        frozen = await call(
            "POST",
            "/v1/institutions",
            admin,
            {
                "name": "跑路培训中心 (demo, frozen)",
                "uscc": "91110108MA01ABCE3M",
                "license_no": "DEMO-002",
                "category": "subject",
                "jurisdiction_code": JURISDICTION,
                "bank_slug": "ums",
                "escrow_account_no": "6222000000000002",
                "basic_account_no": "6228000000000002",
                "basic_account_name": "跑路培训中心",
            },
        )
        regulator = (
            await call(
                "POST",
                "/v1/api-keys",
                admin,
                {
                    "role": "regulator",
                    "name": "demo regulator",
                    "jurisdiction_code": JURISDICTION,
                },
            )
        )["key"]
        institution = (
            await call(
                "POST",
                "/v1/api-keys",
                admin,
                {
                    "role": "institution",
                    "name": "demo school",
                    "institution_id": school["id"],
                },
            )
        )["key"]
        await call(
            "POST",
            f"/v1/regulator/institutions/{frozen['id']}/freeze",
            regulator,
            {"reason": "demo: owner unreachable"},
        )

        today = utcnow().date()
        course = await call(
            "POST",
            "/v1/courses",
            institution,
            {
                "name": "少儿钢琴 (piano)",
                "category": "non_subject",
                "lesson_price_fen": 15_000,
                "starts_on": today.isoformat(),
                "ends_on": (today + timedelta(days=80)).isoformat(),
            },
        )

        async def enroll(student: str, id_number: str, lessons: int) -> dict[str, Any]:
            return await call(
                "POST",
                "/v1/enrollments",
                institution,
                {
                    "course_id": course["id"],
                    "student": {"name": student, "id_number": id_number},
                    "payer": {"name": f"{student}家长", "phone": "13800138000"},
                    "lessons": lessons,
                    "loan_funded": False,
                },
            )

        async def pay(enrollment: dict[str, Any], reference: str) -> None:
            payment = BankPayment(
                bank_slug="ums",
                bank_reference=reference,
                escrow_account_no=school["escrow_account_no"],
                order_no=enrollment["order_no"],
                amount_fen=enrollment["amount_fen"],
                paid_at=utcnow(),
            )
            await db.run(lambda session: credit_payment(session, payment))

        active = await enroll("李小明", "110105201501010017", 20)
        refunded = await enroll("王小红", "110105201502020022", 10)
        await pay(active, "DEMO-PAY-1")
        await pay(refunded, "DEMO-PAY-2")

        now = utcnow()
        lessons = [
            await call(
                "POST",
                f"/v1/enrollments/{active['id']}/lessons",
                institution,
                {
                    "lesson_key": f"demo-lesson-{n}",
                    "occurred_at": (now - timedelta(hours=n + 1)).isoformat(),
                    "count": 1,
                },
            )
            for n in range(6)
        ]
        parent = active["parent_key"]
        for lesson in lessons[:4]:
            await call("POST", f"/v1/lessons/{lesson['id']}/confirm", parent)
        await call(
            "POST",
            f"/v1/lessons/{lessons[4]['id']}/dispute",
            parent,
            {"reason": "demo: teacher absent"},
        )
        await call("POST", "/v1/payouts", institution, {})

        refund = await call(
            "POST",
            f"/v1/enrollments/{refunded['id']}/refunds",
            refunded["parent_key"],
            {"reason": "demo: moving to another city"},
        )
        await call("POST", f"/v1/refunds/{refund['id']}/approve", institution)

        # Completed: a two-lesson trial, both lessons confirmed.
        trial = await enroll("赵小雨", "110105201504040027", 2)
        await pay(trial, "DEMO-PAY-3")
        for n in range(2):
            lesson = await call(
                "POST",
                f"/v1/enrollments/{trial['id']}/lessons",
                institution,
                {"lesson_key": f"demo-trial-{n}", "occurred_at": now.isoformat(), "count": 1},
            )
            await call("POST", f"/v1/lessons/{lesson['id']}/confirm", trial["parent_key"])

        # Cancelled: never paid, expired by the job run as of a day later.
        await enroll("孙小军", "110105201505050024", 4)
        await call(
            "POST",
            "/v1/admin/jobs/expire_enrollments",
            admin,
            {"as_of": (utcnow() + timedelta(days=1, minutes=1)).isoformat()},
        )
        await enroll("张小刚", "11010520150303002X", 8)  # awaiting payment

    return DemoKeys(
        admin=admin,
        regulator=regulator,
        institution=institution,
        parent_active=parent,
        parent_refunded=refunded["parent_key"],
        institution_id=school["id"],
        active_enrollment_id=active["id"],
    )
