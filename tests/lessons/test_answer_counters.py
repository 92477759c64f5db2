"""Whatever the order of answers, resolutions and auto-confirmations, an enrollment's counters are
the sums of its lessons by status, and its money in the ledger is where those statuses say: the
pure rule (`_decided`, `_recount`) on its own, then the whole flow on the database."""

import asyncio
import random
import uuid
from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import select

from app.auth.principal import InstitutionPrincipal, ParentPrincipal, RegulatorPrincipal
from app.db.engine import create_engine
from app.db.unit import Database
from app.jobs.registry import in_batches
from app.kit.clock import SHANGHAI, utcnow
from app.kit.errors import DomainError
from app.ledger import service as ledger
from app.lessons import service
from app.lessons.schemas import LessonItem, Party
from app.lessons.service import COUNTERS, _decided, _recount, auto_confirm_lessons
from app.lessons.types import LessonRow, LockedEnrollment
from app.models import Enrollment, Lesson
from app.models.enrollment import EnrollmentStatus
from app.models.lesson import LessonStatus
from tests.conftest import TEST_DATABASE_URL
from tests.factories import make_world
from tests.lessons.helpers import paid_enrollment

PENDING, DISPUTED = LessonStatus.pending_confirmation, LessonStatus.disputed
RELEASED = (
    LessonStatus.confirmed,
    LessonStatus.auto_confirmed,
    LessonStatus.resolved_for_institution,
)
# Where each status may go, and nowhere else.
NEXT = {
    PENDING: (LessonStatus.confirmed, LessonStatus.auto_confirmed, DISPUTED),
    DISPUTED: (LessonStatus.resolved_for_institution, LessonStatus.resolved_for_parent),
}
COUNTER_FIELDS = (
    "lessons_confirmed",
    "confirmed_fen",
    "lessons_pending",
    "pending_fen",
    "lessons_disputed",
    "disputed_fen",
)
NOW = datetime(2026, 5, 6, 12, tzinfo=UTC)


def counters(enrollment) -> dict[str, int]:
    return {name: getattr(enrollment, name) for name in COUNTER_FIELDS}


def sums_by_status(lessons) -> dict[str, int]:
    """The counters the lessons' statuses call for."""
    expected = dict.fromkeys(COUNTER_FIELDS, 0)
    for lesson in lessons:
        fields = COUNTERS.get(LessonStatus(lesson.status))
        if fields is not None:
            expected[fields[0]] += lesson.count
            expected[fields[1]] += lesson.amount_fen
    return expected


def lesson_row(number: int, count: int, amount_fen: int) -> LessonRow:
    return LessonRow(
        id=uuid.uuid4(),
        enrollment_id=uuid.UUID(int=1),
        lesson_key=f"k{number}",
        status=PENDING,
        count=count,
        first_no=number,
        amount_fen=amount_fen,
        occurred_at=NOW,
        confirm_due_on=NOW.date(),
        dispute_reason=None,
        decided_by=None,
        decided_at=None,
        resolution_note=None,
        created_at=NOW,
    )


@given(
    lessons=st.lists(st.tuples(st.integers(1, 3), st.integers(1, 50_000)), min_size=1, max_size=6),
    moves=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 2)), max_size=20),
)
def test_the_counters_are_the_sums_of_the_lessons_by_status(lessons, moves):
    rows = [lesson_row(n, count, amount) for n, (count, amount) in enumerate(lessons, start=1)]
    bought = sum(count for count, _ in lessons)
    enrollment = LockedEnrollment(
        id=uuid.UUID(int=1),
        status=EnrollmentStatus.active,
        lessons=bought,
        amount_fen=sum(amount for _, amount in lessons),
        refunded_fen=0,
        paid_at=NOW,
        valid_from=NOW.date(),
        valid_until=NOW.date(),
        lessons_confirmed=0,
        lessons_pending=bought,
        lessons_disputed=0,
        confirmed_fen=0,
        pending_fen=sum(amount for _, amount in lessons),
        disputed_fen=0,
    )
    for index, choice in moves:
        if index >= len(rows) or rows[index].status not in NEXT:
            continue
        targets = NEXT[LessonStatus(rows[index].status)]
        to = targets[choice % len(targets)]
        if to is DISPUTED:
            _recount(enrollment, rows[index], to)
            rows[index] = rows[index].__class__(**{**_fields(rows[index]), "status": to})
        else:
            rows[index] = _decided(enrollment, rows[index], to, "parent", NOW)
        assert counters(enrollment) == sums_by_status(rows)
        everything_released = all(row.status in RELEASED for row in rows)
        assert (enrollment.status == EnrollmentStatus.completed) == everything_released


def _fields(row: LessonRow) -> dict:
    return {name: getattr(row, name) for name in LessonRow.__slots__}


class AnswersMachine(RuleBasedStateMachine):
    """Four lessons of one paid enrollment, answered, resolved and auto-confirmed in any order by
    the services, each refused exactly when the model says so; after every step the database's
    counters, statuses and ledger balances agree with each other and with the model."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.engine = create_engine(TEST_DATABASE_URL, pool_size=2)
        self.db = Database(self.engine)

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.engine.dispose())
        self.loop.close()

    @initialize()
    def record(self) -> None:
        # Hypothesis seeds `random` alike for every example, and the factories draw account
        # numbers from it that must be unique.
        random.seed(uuid.uuid4().int)
        self.world = self.run(make_world(self.engine))
        paid = self.run(paid_enrollment(self.engine, self.world, lessons=7, amount_fen=100_003))
        self.enrollment = paid
        self.paid_fen = 100_003
        self.parent = ParentPrincipal(key_id=None, enrollment_id=paid.id)
        self.regulator = RegulatorPrincipal(
            key_id=None, jurisdiction_code=self.world.jurisdiction_code
        )
        self.institution = InstitutionPrincipal(key_id=None, institution_id=paid.institution_id)
        now = utcnow()
        items = [
            LessonItem(
                enrollment_id=paid.id,
                lesson_key=f"L-{uuid.uuid4().hex[:12]}",
                occurred_at=now - timedelta(minutes=n),
                count=1 + n % 2,
            )
            for n in range(4)
        ]
        outcomes = self.run(
            self.db.run(
                lambda session: service.record_lessons(session, paid.institution_id, items, now)
            )
        )
        self.lessons = [outcome.lesson for outcome in outcomes]
        self.status = {lesson.id: LessonStatus(PENDING) for lesson in self.lessons}

    def _answer(self, work, allowed: bool, to: LessonStatus, lesson: LessonRow) -> None:
        try:
            answered = self.run(self.db.run(work))
        except DomainError:
            assert not allowed, f"refused moving {self.status[lesson.id]} to {to}"
            return
        assert allowed, f"moved {self.status[lesson.id]} to {to}"
        assert (answered.id, answered.status) == (lesson.id, to)
        self.status[lesson.id] = to

    @rule(index=st.integers(0, 3))
    def confirm(self, index: int) -> None:
        lesson = self.lessons[index]
        was = self.status[lesson.id]
        self._answer(
            lambda session: service.confirm_lesson(session, self.parent, lesson.id, utcnow()),
            # Confirming a confirmed lesson again answers with it, unchanged.
            was in (PENDING, LessonStatus.confirmed),
            LessonStatus.confirmed,
            lesson,
        )

    @rule(index=st.integers(0, 3))
    def dispute(self, index: int) -> None:
        lesson = self.lessons[index]
        self._answer(
            lambda session: service.dispute_lesson(
                session, self.parent, lesson.id, "absent", utcnow()
            ),
            self.status[lesson.id] == PENDING,
            DISPUTED,
            lesson,
        )

    @rule(index=st.integers(0, 3), for_institution=st.booleans(), by_regulator=st.booleans())
    def resolve(self, index: int, for_institution: bool, by_regulator: bool) -> None:
        lesson = self.lessons[index]
        caller = self.regulator if by_regulator else self.institution
        party = Party.institution if for_institution else Party.parent
        to = (
            LessonStatus.resolved_for_institution
            if for_institution
            else LessonStatus.resolved_for_parent
        )
        self._answer(
            lambda session: service.resolve_dispute(
                session, caller, lesson.id, party, "decided", utcnow()
            ),
            self.status[lesson.id] == DISPUTED and (by_regulator or not for_institution),
            to,
            lesson,
        )

    @precondition(lambda self: any(status == PENDING for status in self.status.values()))
    @rule()
    def silence(self) -> None:
        """The auto-confirm job, run once the lessons' time to answer has passed."""
        after = max(lesson.confirm_due_on for lesson in self.lessons) + timedelta(days=1)
        self.run(
            in_batches(auto_confirm_lessons)(self.db, datetime.combine(after, time(12), SHANGHAI))
        )
        for lesson_id, status in self.status.items():
            if status == PENDING:
                self.status[lesson_id] = LessonStatus.auto_confirmed

    @invariant()
    def counters_and_money_agree(self) -> None:
        if not hasattr(self, "enrollment"):
            return
        institution_id, enrollment_id = self.enrollment.institution_id, self.enrollment.id

        async def read(session):
            enrollment = await session.get_one(Enrollment, (institution_id, enrollment_id))
            lessons = (
                await session.scalars(
                    select(Lesson).where(
                        Lesson.institution_id == institution_id,
                        Lesson.enrollment_id == enrollment_id,
                    )
                )
            ).all()
            connection = await session.connection()
            accounts = {
                account.code: account.normal_balance_fen
                for account in (await ledger.accounts(connection, institution_id)).values()
            }
            report = await ledger.verify(connection, institution_id)
            return counters(enrollment), enrollment.status, list(lessons), accounts, report

        found, status, lessons, accounts, report = self.run(self.db.run(read))
        assert {lesson.id: lesson.status for lesson in lessons} == self.status
        assert found == sums_by_status(lessons)
        released = sum(lesson.amount_fen for lesson in lessons if lesson.status in RELEASED)
        assert accounts[f"prepaid:{enrollment_id}"] == self.paid_fen - released
        assert accounts["releasable"] == released
        # One entry per released lesson, never two.
        assert all(
            (lesson.release_seq is not None) == (lesson.status in RELEASED) for lesson in lessons
        )
        assert report.intact, report.problem
        assert status == EnrollmentStatus.active  # 7 bought, 6 recorded: never all released


TestAnswersMachine = pytest.mark.usefixtures("database_url")(AnswersMachine.TestCase)
TestAnswersMachine.settings = settings(
    max_examples=8,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
