"""An institution with a course and its escrow account's first statement, and opening-balance
files for it."""

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.unit import Database
from app.kit.clock import utcnow
from app.kit.money import yuan
from app.kit.workdays import local_date
from app.models import ReconciliationBreak, ReconciliationRun
from app.models.reconciliation import BreakStatus, BreakType, RunStatus
from tests.factories import World, make_course, make_world, valid_id_number

ENGLISH = (
    "student_name,student_id_number,payer_name,payer_phone,payer_account_no,course_id,"
    "lessons_remaining,unconsumed_yuan,valid_from,valid_until"
)
# Full-width parentheses, as a Chinese keyboard types them.
CHINESE = "学生姓名,学生身份证号,缴费人姓名,缴费人电话,缴费人账号,课程编号,剩余课时,未消费金额（元）,有效期起,有效期止"  # noqa: RUF001


@dataclass
class Onboarded:
    world: World
    course_id: UUID


async def onboarded(engine: AsyncEngine, **profile) -> Onboarded:
    world = await make_world(engine, **profile)
    course = await make_course(engine, world.institution_id)
    return Onboarded(world, course.id)


async def first_statement(engine: AsyncEngine, world: World, opening_fen: int) -> UUID:
    """The escrow account's first statement, of yesterday, as reconciliation records it (read from
    the bank's file, its balance not yet in the ledger: a balance_mismatch break); the break's id."""
    run_id, break_id = uuid.uuid4(), uuid.uuid4()
    day = local_date(utcnow()) - timedelta(days=1)

    async def work(session):
        session.add(
            ReconciliationRun(
                institution_id=world.institution_id,
                id=run_id,
                bank_slug="ums",
                bank_message_id=None,
                account_no=world.escrow_account_no,
                statement_date=day,
                status=RunStatus.breaks,
                lines=0,
                opening_fen=opening_fen,
                closing_fen=opening_fen,
                credits_fen=0,
                debits_fen=0,
                ledger_balance_fen=0,
                created_at=utcnow(),
            )
        )
        session.add(
            ReconciliationBreak(
                institution_id=world.institution_id,
                id=break_id,
                run_id=run_id,
                type=BreakType.balance_mismatch,
                status=BreakStatus.open,
                amount_fen=opening_fen,
                expected_fen=0,
                detail=f"the bank closes the day at {opening_fen} fen; the ledger's escrow "
                f"balance at the cut-off is 0 fen: {opening_fen} fen that no line explains",
                opened_at=utcnow(),
                opened_by="reconciliation",
            )
        )

    await Database(engine).run(work)
    return break_id


def row(
    course_id: UUID,
    fen: int,
    lessons: int = 10,
    *,
    name: str = "李小明",
    id_number: str | None = None,
    amount: str | None = None,
    valid_from: date | None = None,
    valid_until: date | None = None,
) -> str:
    today = local_date(utcnow())
    return ",".join(
        [
            name,
            id_number or valid_id_number(),
            "李华",
            "13800000000",
            "6222000011112222",
            str(course_id),
            str(lessons),
            amount if amount is not None else yuan(fen),
            (valid_from or today - timedelta(days=30)).isoformat(),
            (valid_until or today + timedelta(days=60)).isoformat(),
        ]
    )


def csv_file(*rows: str, header: str = ENGLISH, bom: bool = False) -> bytes:
    return ("\ufeff" if bom else "").encode() + "\n".join([header, *rows]).encode() + b"\n"
