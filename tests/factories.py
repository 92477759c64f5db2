"""Test data made directly in the database, for tests whose subject is something else.

Each call makes new objects (fresh codes, ids and numbers), so tests never collide and never clean
up. `World` carries an institution with its keys; `auth(key)` makes the Authorization header.
"""

import itertools
import random
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth.service import issue_key
from app.config import get_settings
from app.db.unit import Database
from app.jurisdictions.profile import RuleProfile
from app.kit.clock import utcnow
from app.ledger import service as ledger
from app.ledger.books import enrollment_account, institution_books
from app.ledger.types import EntryDraft
from app.models import Course, Enrollment, Institution, Jurisdiction
from app.models.api_key import Role

_serial = itertools.count(1)
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def valid_uscc(rng: random.Random | None = None) -> str:
    """A random unified social credit code with a correct check character (GB 32100-2015)."""
    rng = rng or random.Random()
    weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    body = "91" + "".join(rng.choice("0123456789") for _ in range(6))
    body += "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(body, weights, strict=True))
    return body + USCC_ALPHABET[(31 - total % 31) % 31]


def secret() -> str:
    return get_settings().secret_key.get_secret_value()


@dataclass
class World:
    jurisdiction_code: str
    institution_id: UUID
    escrow_account_no: str
    institution_key: str
    regulator_key: str
    admin_key: str


async def make_jurisdiction(engine: AsyncEngine, **profile: Any) -> str:
    code = f"J{next(_serial)}{uuid.uuid4().hex[:6]}"
    now = utcnow()

    async def work(session):
        session.add(
            Jurisdiction(
                code=code,
                name=f"Test county {code}",
                profile=RuleProfile(**profile).model_dump(),
                created_at=now,
                updated_at=now,
            )
        )

    await Database(engine).run(work)
    return code


async def make_institution(
    engine: AsyncEngine, jurisdiction_code: str, bank_slug: str = "ums", **fields: Any
) -> Institution:
    now = utcnow()
    institution = Institution(
        **{
            "id": uuid.uuid4(),
            "name": f"Test school {next(_serial)}",
            "uscc": valid_uscc(),
            "license_no": f"L{uuid.uuid4().hex[:10]}",
            "category": "non_subject",
            "jurisdiction_code": jurisdiction_code,
            "bank_slug": bank_slug,
            "escrow_account_no": f"6222{random.randrange(10**15):015d}",
            "basic_account_no": f"6228{random.randrange(10**15):015d}",
            "basic_account_name": "Test school",
            "status": "active",
            "list_status": "none",
            "alert_level": "GREEN",
            "created_at": now,
            "updated_at": now,
            **fields,
        }
    )

    async def work(session):
        session.add(institution)
        await session.flush()
        await institution_books(await session.connection(), institution.id)

    await Database(engine).run(work)
    return institution


async def make_key(engine: AsyncEngine, role: Role, **scope: Any) -> str:
    async def work(session):
        _, key = await issue_key(session, secret(), role=role, name=f"test {role}", **scope)
        return key

    return await Database(engine).run(work)


async def make_world(engine: AsyncEngine, **profile: Any) -> World:
    code = await make_jurisdiction(engine, **profile)
    institution = await make_institution(engine, code)
    return World(
        jurisdiction_code=code,
        institution_id=institution.id,
        escrow_account_no=institution.escrow_account_no,
        institution_key=await make_key(engine, Role.institution, institution_id=institution.id),
        regulator_key=await make_key(engine, Role.regulator, jurisdiction_code=code),
        admin_key=await make_key(engine, Role.admin),
    )


async def make_course(
    engine: AsyncEngine,
    institution_id: UUID,
    lesson_price_fen: int = 10_000,
    starts_on: date = date(2026, 3, 1),
    ends_on: date = date(2026, 5, 31),
) -> Course:
    course = Course(
        institution_id=institution_id,
        id=uuid.uuid4(),
        name="Piano",
        category="non_subject",
        lesson_price_fen=lesson_price_fen,
        starts_on=starts_on,
        ends_on=ends_on,
        created_at=utcnow(),
    )

    async def work(session):
        session.add(course)

    await Database(engine).run(work)
    return course


async def make_paid_enrollment(
    engine: AsyncEngine,
    world: World,
    lessons: int = 20,
    lesson_price_fen: int = 10_000,
    released: int = 0,
    pending: int = 0,
    amount_fen: int | None = None,
    status: str = "active",
) -> Enrollment:
    """An enrollment paid in full through the ledger (by default `lessons * lesson_price_fen`; any
    `amount_fen`, as an opening balance need not divide evenly), with `released` lessons' money
    moved to releasable (as confirmed lessons) and `pending` lessons recorded, as counters only."""
    course = await make_course(engine, world.institution_id, lesson_price_fen)
    now = utcnow()
    amount = lessons * lesson_price_fen if amount_fen is None else amount_fen
    enrollment = Enrollment(
        institution_id=world.institution_id,
        id=uuid.uuid4(),
        course_id=course.id,
        order_no=f"PG{uuid.uuid4().hex[:30]}",
        student_name="Xiao Ming",
        student_id_hash=uuid.uuid4().hex * 2,
        student_id_masked="110***********002X",
        payer_name="Wang Fang",
        payer_phone="13800000000",
        lessons=lessons,
        lesson_price_fen=lesson_price_fen,
        amount_fen=amount,
        status=status,
        paid_fen=amount,
        lessons_confirmed=released,
        confirmed_fen=released * lesson_price_fen,
        lessons_pending=pending,
        pending_fen=pending * lesson_price_fen,
        expires_at=now,
        paid_at=now,
        created_at=now,
        updated_at=now,
    )

    async def work(session):
        session.add(enrollment)
        await session.flush()
        connection = await session.connection()
        books = await institution_books(connection, world.institution_id)
        prepaid = await enrollment_account(connection, world.institution_id, enrollment.id)
        drafts = [
            EntryDraft.transfer(
                f"payment:test:{enrollment.id}", "payment", books.escrow_cash.id, prepaid.id, amount
            )
        ]
        if released:
            drafts.append(
                EntryDraft.transfer(
                    f"lesson:{enrollment.id}:release",
                    "lesson_release",
                    prepaid.id,
                    books.releasable.id,
                    released * lesson_price_fen,
                )
            )
        for draft in drafts:
            await ledger.post(connection, world.institution_id, draft)

    await Database(engine).run(work)
    return enrollment
