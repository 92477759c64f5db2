"""Test data for tests whose subject is something else: the operator's setup (jurisdiction,
institution, keys) written directly, as the CLI does; courses, enrollments, payments and lessons
made through the services, so their counters and ledger are what the service would make.

Each call makes new objects (fresh codes, ids and numbers), so tests never collide and never clean
up. `World` carries an institution with its keys; `auth(key)` makes the Authorization header.
"""

import itertools
import random
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import time_machine
from dateutil.relativedelta import relativedelta
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from stdnum.cn import ric

from app.auth.principal import ParentPrincipal
from app.auth.service import issue_key
from app.config import get_settings
from app.courses.schemas import CourseCreate
from app.courses.service import create_course
from app.db.unit import Database
from app.enrollments.schemas import EnrollmentCreate, PayerIn, StudentIn
from app.enrollments.service import create_enrollment
from app.jurisdictions.profile import RuleProfile
from app.kit.clock import utcnow
from app.kit.workdays import local_date
from app.ledger.books import institution_books
from app.lessons.schemas import LessonItem
from app.lessons.service import Recorded, confirm_lesson, record_lessons
from app.models import Course, Enrollment, Institution, Jurisdiction
from app.models.api_key import Role
from app.models.institution import InstitutionCategory
from app.payments.service import BankPayment, credit_payment

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


def valid_id_number(rng: random.Random | None = None) -> str:
    """A random resident identity number with a valid birth date and check character."""
    rng = rng or random.Random()
    birth = date(2010, 1, 1) + relativedelta(days=rng.randrange(3000))
    body = f"110105{birth:%Y%m%d}{rng.randrange(1000):03d}"
    return body + ric.calc_check_digit(body + "?")  # it skips the last character


async def make_course(
    engine: AsyncEngine,
    institution_id: UUID,
    lesson_price_fen: int = 10_000,
    starts_on: date | None = None,
    ends_on: date | None = None,
) -> Course:
    """A course, by default from today for three months."""
    starts_on = starts_on or local_date(utcnow())
    body = CourseCreate(
        name="Piano",
        category=InstitutionCategory.non_subject,
        lesson_price_fen=lesson_price_fen,
        starts_on=starts_on,
        ends_on=ends_on or starts_on + relativedelta(months=3),
    )
    return await Database(engine).run(lambda session: create_course(session, institution_id, body))


# The factory's enrollments are enrolled and paid this long before the test's "now" (the clock moved
# back, not the data), so a test may record lessons given in the last hours: never before payment.
PAID_BEFORE = timedelta(days=1)


async def make_paid_enrollment(
    engine: AsyncEngine,
    world: World,
    lessons: int = 20,
    lesson_price_fen: int = 10_000,
    released: int = 0,
    pending: int = 0,
    amount_fen: int | None = None,
    paid: bool = True,
) -> Enrollment:
    """An enrollment of a new course, made and paid `PAID_BEFORE` ago through the services, as the
    API and a verified bank payment would, with `released` lessons recorded and confirmed by the
    parent now (so their money is releasable from tomorrow, T+1), and `pending` more recorded.
    `amount_fen` other than `lessons * lesson_price_fen` is an opening balance (存量) that need not
    divide evenly: no service imports one yet, so the order's amount is set here before it is
    paid."""
    db = Database(engine)
    # An unpaid one is made now: a day old, it would be near its payment deadline.
    with time_machine.travel(utcnow() - (PAID_BEFORE if paid else timedelta(0)), tick=True):
        course = await make_course(engine, world.institution_id, lesson_price_fen)
        body = EnrollmentCreate(
            course_id=course.id,
            student=StudentIn(name="Xiao Ming", id_number=valid_id_number()),
            payer=PayerIn(name="Wang Fang", phone="13800000000"),
            lessons=lessons,
        )

        async def enroll(session: AsyncSession) -> Enrollment:
            enrollment, _ = await create_enrollment(
                session, secret(), world.institution_id, body, utcnow()
            )
            if amount_fen is not None:
                enrollment.amount_fen = amount_fen
            return enrollment

        enrollment = await db.run(enroll)
        if not paid:
            return enrollment

        async def pay(session: AsyncSession) -> None:
            institution = await session.get_one(Institution, world.institution_id)
            payment = BankPayment(
                bank_slug=institution.bank_slug,
                bank_reference=f"REF{uuid.uuid4().hex[:20]}",
                escrow_account_no=world.escrow_account_no,
                order_no=enrollment.order_no,
                amount_fen=enrollment.amount_fen,
                paid_at=utcnow(),
            )
            await credit_payment(session, payment)

        await db.run(pay)
    items = [
        LessonItem(
            enrollment_id=enrollment.id,
            lesson_key=f"factory-{uuid.uuid4().hex}",
            occurred_at=utcnow(),
        )
        for _ in range(released + pending)
    ]
    if items:
        recorded = await db.run(
            lambda session: record_lessons(session, world.institution_id, items, utcnow())
        )
        parent = ParentPrincipal(key_id=None, enrollment_id=enrollment.id)
        for outcome in recorded[:released]:
            assert isinstance(outcome, Recorded), outcome
            lesson_id = outcome.lesson.id
            await db.run(
                lambda session, lesson_id=lesson_id: confirm_lesson(
                    session, parent, lesson_id, utcnow()
                )
            )
    return await db.run(
        lambda session: session.get_one(Enrollment, (world.institution_id, enrollment.id))
    )
