"""An institution banking with a simulated bank: the service and the bank simulator each on a real
port, the bank configured on the service through its API with freshly made keys, an escrow account
opened at the bank. Tests drive the service with `service` and the bank with `bank`."""

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.kit.clock import SHANGHAI, utcnow
from app.models.api_key import Role
from bank_simulator.app import create_simulator
from bank_simulator.bank import Simulator
from bank_simulator.config import SimBank, SimulatorConfig
from bank_simulator.keys import bank_keys
from tests.factories import World, auth, make_institution, make_jurisdiction, make_key
from tests.live import serve

PRICE = 10_000


@dataclass
class Simulated:
    slug: str
    adapter: str
    service: httpx.AsyncClient
    bank: httpx.AsyncClient
    admin: dict[str, str]
    institution: dict[str, str]
    regulator: dict[str, str]
    institution_id: UUID
    escrow_account_no: str
    simulator: Simulator  # the bank's books, for a test that tampers with what the bank says

    def world(self) -> World:
        """For the factories, which make money appear in the ledger directly (see
        `opening_balance_fen`, its counterpart at the bank)."""
        return World("", self.institution_id, self.escrow_account_no, "", "", "")

    async def run_job(self, job: str, as_of: Any = None) -> int:
        body = {} if as_of is None else {"as_of": as_of.isoformat()}
        response = await self.service.post(f"/v1/admin/jobs/{job}", headers=self.admin, json=body)
        assert response.status_code == 200, response.text
        return response.json()["handled"]

    async def bank_balance(self) -> int:
        response = await self.bank.get(f"/sim/accounts/{self.slug}/{self.escrow_account_no}")
        assert response.status_code == 200, response.text
        return response.json()["balance_fen"]

    async def balance_view(self) -> dict[str, Any]:
        response = await self.service.get(
            f"/v1/regulator/institutions/{self.institution_id}/balance", headers=self.regulator
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def enroll(self, lessons: int, course_id: str | None = None) -> dict[str, Any]:
        if course_id is None:
            today = utcnow().astimezone(SHANGHAI).date()
            course = await self.service.post(
                "/v1/courses",
                headers=self.institution,
                json={
                    "name": "Weiqi",
                    "category": "non_subject",
                    "lesson_price_fen": PRICE,
                    "starts_on": today.isoformat(),
                    "ends_on": (today + timedelta(days=80)).isoformat(),
                },
            )
            assert course.status_code == 201, course.text
            course_id = course.json()["id"]
        enrollment = await self.service.post(
            "/v1/enrollments",
            headers=self.institution,
            json={
                "course_id": course_id,
                "student": {"name": "Li Lei", "id_number": "110105201501010017"},
                "payer": {"name": "Li parent", "phone": "13800138000"},
                "lessons": lessons,
                "loan_funded": False,
            },
        )
        assert enrollment.status_code == 201, enrollment.text
        return enrollment.json()

    async def pay(self, order_no: str, amount_fen: int, **options: Any) -> dict[str, Any]:
        """The parent pays at the bank; the bank notifies the service."""
        response = await self.bank.post(
            "/sim/payments",
            json={
                "slug": self.slug,
                "account_no": self.escrow_account_no,
                "order_no": order_no,
                "amount_fen": amount_fen,
                **options,
            },
        )
        assert response.status_code in (200, 201), response.text
        return response.json()

    async def refund_in_full(self, enrollment: dict[str, Any]) -> dict[str, Any]:
        """The parent asks for the enrollment's money back, the institution approves, the dispatch
        job sends the refund to the bank: the refund as the service answered the request."""
        refund = await self.service.post(
            f"/v1/enrollments/{enrollment['id']}/refunds",
            headers=auth(enrollment["parent_key"]),
            json={"reason": "moving away"},
        )
        assert refund.status_code == 201, refund.text
        approved = await self.service.post(
            f"/v1/refunds/{refund.json()['id']}/approve", headers=self.institution
        )
        assert approved.status_code == 200, approved.text
        await self.run_job("dispatch_instructions")
        return refund.json()

    async def settle(self, outcome: str = "success", **options: Any) -> dict[str, Any]:
        response = await self.bank.post(
            "/sim/settle", json={"slug": self.slug, "outcome": outcome, **options}
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def bank_instructions(self) -> list[dict[str, Any]]:
        response = await self.bank.get(f"/sim/instructions/{self.slug}")
        assert response.status_code == 200, response.text
        body = response.json()
        return body["items"] if isinstance(body, dict) else body


@contextlib.asynccontextmanager
async def simulated_bank(
    engine: AsyncEngine,
    database_url: str,
    adapter: str,
    opening_balance_fen: int = 0,
    statements: dict[str, Any] | None = None,
    **settings: Any,
) -> AsyncIterator[Simulated]:
    """`statements`: the bank's statement settings (`PUT /v1/banks/{slug}`), else the defaults."""
    from app.main import create_app

    app = create_app(Settings(database_url=database_url, **settings))
    async with app.router.lifespan_context(app), serve(app) as service_url:
        keys = bank_keys(adapter)
        slug = f"{adapter[:3]}-{uuid.uuid4().hex[:10]}"
        simulator = create_simulator(
            SimulatorConfig(
                service_url=service_url,
                banks=[SimBank(slug=slug, adapter=adapter, **keys.simulator_config)],
                delivery_backoff_seconds=0.05,
            )
        )
        async with (
            simulator.router.lifespan_context(simulator),
            serve(simulator) as bank_url,
            httpx.AsyncClient(base_url=service_url, timeout=30) as service,
            httpx.AsyncClient(base_url=bank_url, timeout=30) as bank,
        ):
            admin = auth(await make_key(engine, Role.admin))
            configured = await service.put(
                f"/v1/banks/{slug}",
                headers=admin,
                json={
                    "adapter": adapter,
                    "base_url": f"{bank_url}/banks/{slug}",
                    "config": keys.service_config,
                    **({"statements": statements} if statements is not None else {}),
                },
            )
            assert configured.status_code == 200, configured.text
            code = await make_jurisdiction(engine, min_balance_floor_fen=0, release_lag_days=0)
            school = await make_institution(engine, code, bank_slug=slug)
            opened = await bank.post(
                "/sim/accounts",
                json={
                    "slug": slug,
                    "account_no": school.escrow_account_no,
                    "balance_fen": opening_balance_fen,
                },
            )
            assert opened.status_code in (200, 201), opened.text
            yield Simulated(
                slug=slug,
                adapter=adapter,
                service=service,
                bank=bank,
                admin=admin,
                institution=auth(
                    await make_key(engine, Role.institution, institution_id=school.id)
                ),
                regulator=auth(await make_key(engine, Role.regulator, jurisdiction_code=code)),
                institution_id=school.id,
                escrow_account_no=school.escrow_account_no,
                simulator=simulator.state.simulator,
            )
