"""Banks configured on the service, each with an institution of its own, and messages in each bank's
exact format signed with its key (by the bank simulator's dialects, used here without the
simulator's HTTP): to have one bank say things about another bank's accounts and instructions."""

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.unit import Database
from app.kit.clock import SHANGHAI, utcnow
from app.ledger import service as ledger
from app.ledger.types import AccountKind
from app.models import Alert, BankMessage, SecurityEvent
from app.models.api_key import Role
from bank_simulator.config import SimBank
from bank_simulator.keys import bank_keys
from bank_simulator.messages import DIALECTS
from bank_simulator.messages.base import Outgoing
from bank_simulator.state import Instruction, InstructionState, Payment
from tests.factories import World, auth, make_institution, make_jurisdiction, make_key

ADAPTERS = ["ums", "iso20022", "gmbank"]
PUSHING = ["iso20022", "gmbank"]  # banks that push results (ums answers queries only)


def reference() -> str:
    return f"{utcnow().astimezone(SHANGHAI):%Y%m%d%H%M%S}{secrets.randbelow(10**8):08d}"


@dataclass
class Voice:
    """One bank: configured on the service, with one institution holding an escrow account."""

    slug: str
    adapter: str
    sim: SimBank
    world: World

    @property
    def dialect(self) -> Any:
        return DIALECTS[self.adapter]

    @property
    def institution(self) -> dict[str, str]:
        return auth(self.world.institution_key)

    @property
    def admin(self) -> dict[str, str]:
        return auth(self.world.admin_key)

    def credit(
        self,
        account_no: str,
        order_no: str,
        amount_fen: int,
        *,
        amount_text: str | None = None,
        status: str | None = None,
    ) -> Outgoing:
        payment = Payment(
            slug=self.slug,
            account_no=account_no,
            order_no=order_no,
            amount_fen=amount_fen,
            bank_reference=reference(),
            channel_order_id=reference(),
            payer_name="张三",
            payer_account="6222020200001234",
        )
        return self.dialect.payment(
            self.sim,
            message_id=uuid.uuid4().hex,
            payment=payment,
            status=status or self.dialect.payment_success_status,
            amount_text=self.dialect.amount_text(amount_fen)
            if amount_text is None
            else amount_text,
            at=utcnow(),
        )

    def _instruction(
        self, instruction_id: str, account_no: str, amount_fen: int, state: InstructionState
    ) -> Instruction:
        return Instruction(
            slug=self.slug,
            id=instruction_id,
            kind="payout",
            account_no=account_no,
            amount_fen=amount_fen,
            payee_account="3100000000000099",
            payee_name="某某培训学校",
            memo="PAYOUT",
            received_at=utcnow(),
            state=state,
            reason=None if state is InstructionState.success else "AC04",
            bank_reference=reference(),
        )

    def result(
        self, instruction_id: str, account_no: str, amount_fen: int, *, settled: bool
    ) -> Outgoing:
        """The bank's pushed result (iso20022 pain.002, gmbank PAYOUT_RESULT)."""
        state = InstructionState.success if settled else InstructionState.failed
        outgoing = self.dialect.result(
            self.sim,
            message_id=uuid.uuid4().hex,
            instruction=self._instruction(instruction_id, account_no, amount_fen, state),
            at=utcnow(),
        )
        assert outgoing is not None, f"{self.adapter} pushes no results"
        return outgoing

    def returned(self, instruction_id: str, account_no: str, amount_fen: int) -> Outgoing:
        """退票: iso20022 a camt.054 credit with RtrInf, gmbank RETURN."""
        instruction = self._instruction(
            instruction_id, account_no, amount_fen, InstructionState.returned
        )
        outgoing = self.dialect.returned(
            self.sim,
            message_id=uuid.uuid4().hex,
            instruction=instruction,
            bank_reference=reference(),
            at=utcnow(),
        )
        assert outgoing is not None, f"{self.adapter} pushes no returns"
        return outgoing

    async def send(self, client: httpx.AsyncClient, outgoing: Outgoing) -> httpx.Response:
        """Post it to the service, signed afresh (as each resend is: a new nonce and time)."""
        headers = {"Content-Type": outgoing.content_type}
        headers.update(self.dialect.sign(self.sim, outgoing.body, utcnow()))
        return await client.post(
            f"/v1/banks/{self.slug}/notify", content=outgoing.body, headers=headers
        )

    async def enrollment(self, client: httpx.AsyncClient, lessons: int = 5) -> dict[str, Any]:
        """An enrollment awaiting payment at this bank's institution."""
        today = utcnow().astimezone(SHANGHAI).date()
        course = await client.post(
            "/v1/courses",
            headers=self.institution,
            json={
                "name": "Go",
                "category": "non_subject",
                "lesson_price_fen": 10_000,
                "starts_on": today.isoformat(),
                "ends_on": (today + timedelta(days=60)).isoformat(),
            },
        )
        assert course.status_code == 201, course.text
        enrollment = await client.post(
            "/v1/enrollments",
            headers=self.institution,
            json={
                "course_id": course.json()["id"],
                "student": {"name": "Li Lei", "id_number": "110105201501010017"},
                "payer": {"name": "Li parent", "phone": "13800138000"},
                "lessons": lessons,
                "loan_funded": False,
            },
        )
        assert enrollment.status_code == 201, enrollment.text
        return enrollment.json()

    async def balances(self, engine: AsyncEngine) -> dict[AccountKind, int]:
        async with engine.connect() as connection:
            return await ledger.balances_by_kind(connection, self.world.institution_id)


async def configured_bank(
    engine: AsyncEngine, client: httpx.AsyncClient, adapter: str, **institution: Any
) -> Voice:
    keys = bank_keys(adapter)
    slug = f"{adapter[:3]}-{uuid.uuid4().hex[:10]}"
    admin = await make_key(engine, Role.admin)
    put = await client.put(
        f"/v1/banks/{slug}",
        headers=auth(admin),
        json={
            "adapter": adapter,
            "base_url": "http://127.0.0.1:9/bank",
            "config": keys.service_config,
        },
    )
    assert put.status_code == 200, put.text
    code = await make_jurisdiction(engine, min_balance_floor_fen=0, release_lag_days=0)
    school = await make_institution(engine, code, bank_slug=slug, **institution)
    world = World(
        jurisdiction_code=code,
        institution_id=school.id,
        escrow_account_no=school.escrow_account_no,
        institution_key=await make_key(engine, Role.institution, institution_id=school.id),
        regulator_key=await make_key(engine, Role.regulator, jurisdiction_code=code),
        admin_key=admin,
    )
    return Voice(slug, adapter, SimBank(slug=slug, adapter=adapter, **keys.simulator_config), world)


# --- what the service kept -----------------------------------------------------------------------


async def _all(engine: AsyncEngine, query: Any) -> list[Any]:
    async def work(session: Any) -> list[Any]:
        return list(await session.scalars(query))

    return await Database(engine).run(work)


async def alerts(engine: AsyncEngine, institution_id: UUID) -> list[Alert]:
    return await _all(
        engine,
        select(Alert).where(Alert.institution_id == institution_id).order_by(Alert.opened_at),
    )


async def security_events(engine: AsyncEngine, slug: str) -> list[SecurityEvent]:
    return await _all(engine, select(SecurityEvent).where(SecurityEvent.bank_slug == slug))


async def messages(engine: AsyncEngine, slug: str) -> list[BankMessage]:
    return await _all(
        engine,
        select(BankMessage).where(BankMessage.bank_slug == slug).order_by(BankMessage.received_at),
    )
