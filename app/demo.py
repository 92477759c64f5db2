"""A living demo jurisdiction, made through the real API on an empty database, with the bank
simulator playing the custodian banks, so that a new user can try every role from /docs at once and
see money move end to end.

It configures the three demo banks (`ums`, `iso20022`, `gmbank`, all played by the simulator) and
makes one jurisdiction, two institutions (one frozen), courses, and enrollments in every state:
awaiting payment, active with lessons confirmed, pending and disputed, refunded, and cancelled. The
payments arrive as signed bank notifications; one payout and one refund are sent to the bank,
executed and reported back. It returns the keys it made (`prepaid-guard serve` writes them to
`demo-keys.json`).
"""

import asyncio
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from app.auth.service import issue_key, principal_for_key
from app.db.unit import Database
from app.kit.clock import utcnow
from app.ledger import service as ledger
from app.ledger.types import AccountKind
from app.models import Institution, Jurisdiction
from app.models.api_key import Role
from bank_simulator.config import SimBank, SimulatorConfig
from bank_simulator.keys import BankKeys, bank_keys

JURISDICTION = "DEMO-COUNTY"
DEMO_ADAPTERS = ("ums", "iso20022", "gmbank")  # each demo bank's slug is its adapter's name
# How long the demo waits for an acknowledged payment to be credited: 10 s at most.
CREDIT_WAIT_TRIES = 200
CREDIT_WAIT_STEP_SECONDS = 0.05


def demo_banks() -> dict[str, BankKeys]:
    """Fresh keys for the three demo banks: the service's half and the simulator's."""
    return {adapter: bank_keys(adapter) for adapter in DEMO_ADAPTERS}


def simulator_config(service_url: str, banks: dict[str, BankKeys]) -> SimulatorConfig:
    return SimulatorConfig(
        service_url=service_url,
        banks=[
            SimBank(slug=slug, adapter=keys.adapter, **keys.simulator_config)
            for slug, keys in banks.items()
        ],
    )


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


def read_keys(path: Path) -> DemoKeys | None:
    """The keys an earlier seeding wrote to `path`, if it holds any."""
    try:
        return DemoKeys(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):  # no file, or not one of ours
        return None


async def opens_database(db: Database, keys: DemoKeys) -> bool:
    """Whether the demo's operator key still opens this database (a keys file may be another
    database's, or the key revoked since)."""
    secret = db.settings.secret_key.get_secret_value()
    operator = await db.run(lambda session: principal_for_key(session, secret, keys.admin))
    return operator is not None and operator.role is Role.admin


async def _reopen_accounts(db: Database, bank: httpx.AsyncClient) -> None:
    """The simulator keeps its books in memory: on a restart, open the demo banks' escrow accounts
    again, holding what the ledger says they hold, so that money can keep moving."""

    async def accounts(session: Any) -> list[tuple[str, str, int]]:
        rows = await session.execute(
            select(Institution.id, Institution.bank_slug, Institution.escrow_account_no).where(
                Institution.bank_slug.in_(DEMO_ADAPTERS)
            )
        )
        connection = await session.connection()
        found = []
        for institution_id, slug, account_no in rows.all():
            totals = await ledger.balances_by_kind(connection, institution_id)
            found.append((slug, account_no, totals.get(AccountKind.escrow_cash, 0)))
        return found

    for slug, account_no, balance in await db.run(accounts):
        await bank.post(
            "/sim/accounts", json={"slug": slug, "account_no": account_no, "balance_fen": balance}
        )


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 300:
        raise DemoFailed(f"{response.request.method} {response.request.url.path}: {response.text}")
    return response.json()


async def seed(
    db: Database,
    client: httpx.AsyncClient,
    bank: httpx.AsyncClient,
    banks: dict[str, BankKeys],
) -> DemoKeys | None:
    """Seed the demo unless the database already has a jurisdiction. `client` talks to the service,
    `bank` to the bank simulator, both live (the service sends instructions to the simulator, and
    the simulator notifies the service). Returns the keys it made."""
    if await db.run(lambda session: session.scalar(select(Jurisdiction.code).limit(1))):
        await _reopen_accounts(db, bank)
        return None
    secret = db.settings.secret_key.get_secret_value()

    async def admin_key(session: Any) -> str:
        _, key = await issue_key(session, secret, role=Role.admin, name="demo operator")
        return key

    admin = await db.run(admin_key)

    async def call(method: str, path: str, key: str, body: Any = None) -> Any:
        return _ok(
            await client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {key}"}
            )
        )

    async def at_bank(path: str, body: dict[str, Any]) -> Any:
        return _ok(await bank.post(path, json=body))

    async def run_job(job: str) -> None:
        await call("POST", f"/v1/admin/jobs/{job}", admin, {})

    for slug, keys in banks.items():
        await call(
            "PUT",
            f"/v1/banks/{slug}",
            admin,
            {
                "adapter": keys.adapter,
                "base_url": str(bank.base_url.join(f"/banks/{slug}")),
                "config": keys.service_config,
            },
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
            "bank_slug": "gmbank",
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

    for opened in (school, frozen):
        await at_bank(
            "/sim/accounts",
            {
                "slug": opened["bank_slug"],
                "account_no": opened["escrow_account_no"],
                "name": opened["name"],
            },
        )

    async def pay(enrollment: dict[str, Any]) -> None:
        """The parent pays at the bank; the bank's signed notification credits the order."""
        paid = await at_bank(
            "/sim/payments",
            {
                "slug": "ums",
                "account_no": school["escrow_account_no"],
                "order_no": enrollment["order_no"],
                "amount_fen": enrollment["amount_fen"],
                "payer_name": "家长",
            },
        )
        if not paid["deliveries"] or paid["deliveries"][-1]["status_code"] != 200:
            raise DemoFailed(f"the bank's notification was not acknowledged: {paid}")
        # The bank's reply means "stored": the credit follows a moment later (docs/banks.md).
        path = f"/v1/enrollments/{enrollment['id']}"
        for _ in range(CREDIT_WAIT_TRIES):
            if (await call("GET", path, institution))["status"] != "awaiting_payment":
                return
            await asyncio.sleep(CREDIT_WAIT_STEP_SECONDS)
        raise DemoFailed(f"the payment of {enrollment['order_no']} was acknowledged, not credited")

    active = await enroll("李小明", "110105201501010017", 20)
    refunded = await enroll("王小红", "110105201502020022", 10)
    await pay(active)
    await pay(refunded)

    # Lessons are given after the payment (one before it is refused), so all of them just now.
    now = utcnow()
    lessons = [
        await call(
            "POST",
            f"/v1/enrollments/{active['id']}/lessons",
            institution,
            {"lesson_key": f"demo-lesson-{n}", "occurred_at": now.isoformat(), "count": 1},
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

    # The payout and the refund go to the bank, which executes them; the ums bank reports
    # outcomes when asked, so the poll job asks.
    await run_job("dispatch_instructions")
    await at_bank("/sim/settle", {"slug": "ums", "outcome": "success"})
    await run_job("poll_instructions")

    # Completed: a two-lesson trial, both lessons confirmed.
    trial = await enroll("赵小雨", "110105201504040027", 2)
    await pay(trial)
    for n in range(2):
        lesson = await call(
            "POST",
            f"/v1/enrollments/{trial['id']}/lessons",
            institution,
            {"lesson_key": f"demo-trial-{n}", "occurred_at": utcnow().isoformat(), "count": 1},
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
