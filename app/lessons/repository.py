"""The lesson queries: recording's reads and writes, the locks of the lesson flows, the due
lessons, pages.

Recording runs on SQLAlchemy Core, its statements built once: a batch of a thousand lessons is the
enrollments locked in one statement, the keys already used read in one, and on PostgreSQL the new
lessons and the enrollments' counters written in one more, the columns sent as arrays. The same
statements serve a group commit of several institutions' single records (app.lessons.group_commit),
the rows then named by (institution, id) pairs."""

from collections.abc import Collection, Sequence
from dataclasses import fields
from datetime import date, datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import ColumnElement, Executable, Table, bindparam, exists, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.auth.principal import Principal
from app.auth.scope import scoped
from app.db.batch import in_list, pairs_bound, pairs_in
from app.kit.pagination import PageRequest, paginate
from app.lessons.errors import LessonNotFound
from app.lessons.types import LessonRow, LockedEnrollment
from app.models import Enrollment, Lesson, WindDown
from app.models.lesson import LessonStatus

lessons = cast(Table, Lesson.__table__)
enrollments = cast(Table, Enrollment.__table__)

_ENROLLMENT_COLUMNS = [enrollments.c[field.name] for field in fields(LockedEnrollment)]
_LESSON_COLUMNS = [lessons.c[field.name] for field in fields(LessonRow)]
# What a new lesson sets, apart from its institution, status and moment of recording (the same for
# every lesson of a batch); the rest (its dispute, decision, release) is empty until later.
_INSERTED = (
    "id",
    "enrollment_id",
    "lesson_key",
    "occurred_at",
    "count",
    "first_no",
    "amount_fen",
    "confirm_due_on",
)
_DIALECTS = ("postgresql", "sqlite")

# The enrollments in id order (so that two transactions locking several never wait on each other
# in a cycle), and the lessons of the keys, each statement spelled once per database: of one
# institution (the whole statement on its shard when sharded by institution), or of pairs
# (institution, enrollment or key) when a group commit holds several institutions' records.
_LOCK_ENROLLMENTS: dict[str, Executable] = {
    dialect: select(enrollments.c.institution_id, *_ENROLLMENT_COLUMNS)
    .where(
        enrollments.c.institution_id == bindparam("institution_id"),
        in_list(enrollments.c.id, "ids", dialect),
    )
    .order_by(enrollments.c.id)
    .with_for_update()
    for dialect in _DIALECTS
}
_LOCK_ENROLLMENTS_ACROSS: dict[str, Executable] = {
    dialect: select(enrollments.c.institution_id, *_ENROLLMENT_COLUMNS)
    .where(pairs_in((enrollments.c.institution_id, enrollments.c.id), "wanted", dialect))
    .order_by(enrollments.c.id)
    .with_for_update()
    for dialect in _DIALECTS
}
_LESSONS_BY_KEY: dict[str, Executable] = {
    dialect: select(lessons.c.institution_id, *_LESSON_COLUMNS).where(
        lessons.c.institution_id == bindparam("institution_id"),
        in_list(lessons.c.lesson_key, "keys", dialect),
    )
    for dialect in _DIALECTS
}
_LESSONS_BY_KEY_ACROSS: dict[str, Executable] = {
    dialect: select(lessons.c.institution_id, *_LESSON_COLUMNS).where(
        pairs_in((lessons.c.institution_id, lessons.c.lesson_key), "wanted", dialect)
    )
    for dialect in _DIALECTS
}
# PostgreSQL: the new lessons and the counters they change, in one statement and one round trip
# whatever the batch (each column goes as one array, the institution too), prepared once for every
# batch size.
_RECORD = text("""
    WITH new_lessons AS (
        INSERT INTO lessons (institution_id, id, enrollment_id, lesson_key, occurred_at, count,
                             first_no, amount_fen, status, confirm_due_on, created_at)
        SELECT institution_id, id, enrollment_id, lesson_key, occurred_at, count, first_no,
               amount_fen, CAST(:status AS varchar), confirm_due_on, CAST(:now AS timestamptz)
          FROM unnest(
            CAST(:institution_id AS uuid[]), CAST(:id AS uuid[]),
            CAST(:enrollment_id AS uuid[]), CAST(:lesson_key AS varchar[]),
            CAST(:occurred_at AS timestamptz[]), CAST(:count AS integer[]),
            CAST(:first_no AS integer[]), CAST(:amount_fen AS bigint[]),
            CAST(:confirm_due_on AS date[]))
            AS l(institution_id, id, enrollment_id, lesson_key, occurred_at, count, first_no,
                 amount_fen, confirm_due_on)
    )
    UPDATE enrollments
       SET lessons_pending = counted.lessons_pending, pending_fen = counted.pending_fen,
           updated_at = :now
      FROM unnest(CAST(:enrollment_institution_ids AS uuid[]), CAST(:enrollment_ids AS uuid[]),
                  CAST(:lessons_pending AS integer[]), CAST(:pending_fen AS bigint[]))
           AS counted(institution_id, id, lessons_pending, pending_fen)
     WHERE enrollments.institution_id = counted.institution_id AND enrollments.id = counted.id
""")
# SQLite: the same two writes as executemany.
_INSERT_LESSONS = lessons.insert()
_SET_PENDING = (
    update(enrollments)
    .where(
        enrollments.c.institution_id == bindparam("institution"),
        enrollments.c.id == bindparam("enrollment"),
    )
    .values(
        lessons_pending=bindparam("pending"),
        pending_fen=bindparam("pending_amount"),
        updated_at=bindparam("now"),
    )
)


_Keyed = tuple[UUID, Any]  # a row's institution, and its key there (an id or a lesson key)


def _one_institution(wanted: Collection[_Keyed]) -> UUID | None:
    institutions = {institution_id for institution_id, _ in wanted}
    return institutions.pop() if len(institutions) == 1 else None


async def locked_for_recording(
    connection: AsyncConnection, wanted: Collection[tuple[UUID, UUID]]
) -> dict[tuple[UUID, UUID], LockedEnrollment]:
    """The enrollments among `wanted` (institution, enrollment id), locked in id order, by the
    same pairs."""
    dialect = connection.dialect.name
    institution_id = _one_institution(wanted)
    if institution_id is not None:
        query = _LOCK_ENROLLMENTS[dialect]
        bound = {"institution_id": institution_id, "ids": [id_ for _, id_ in wanted]}
    else:
        query, bound = _LOCK_ENROLLMENTS_ACROSS[dialect], pairs_bound("wanted", wanted, dialect)
    rows = await connection.execute(query, bound)
    return {(row[0], row.id): LockedEnrollment(*row[1:]) for row in rows}


async def lessons_by_key(
    connection: AsyncConnection, wanted: Collection[tuple[UUID, str]]
) -> dict[tuple[UUID, str], LessonRow]:
    """The lessons recorded under `wanted` (institution, lesson key), by the same pairs."""
    dialect = connection.dialect.name
    institution_id = _one_institution(wanted)
    if institution_id is not None:
        query = _LESSONS_BY_KEY[dialect]
        bound = {"institution_id": institution_id, "keys": [key for _, key in wanted]}
    else:
        query, bound = _LESSONS_BY_KEY_ACROSS[dialect], pairs_bound("wanted", wanted, dialect)
    rows = await connection.execute(query, bound)
    return {(row[0], row.lesson_key): LessonRow(*row[1:]) for row in rows}


async def write_recorded(
    connection: AsyncConnection,
    new: Sequence[tuple[UUID, LessonRow]],
    counted: Sequence[tuple[UUID, LockedEnrollment]],
    now: datetime,
) -> None:
    """Insert the new lessons (each with its institution), all pending and recorded `now`, and set
    the pending counters of the enrollments (each with its institution) they are in."""
    if connection.dialect.name == "postgresql":
        await connection.execute(
            _RECORD,
            {
                "institution_id": [institution_id for institution_id, _ in new],
                "status": LessonStatus.pending_confirmation,
                **{name: [getattr(lesson, name) for _, lesson in new] for name in _INSERTED},
                "enrollment_institution_ids": [institution_id for institution_id, _ in counted],
                "enrollment_ids": [enrollment.id for _, enrollment in counted],
                "lessons_pending": [enrollment.lessons_pending for _, enrollment in counted],
                "pending_fen": [enrollment.pending_fen for _, enrollment in counted],
                "now": now,
            },
        )
        return
    await connection.execute(
        _INSERT_LESSONS,
        [_inserted(institution_id, lesson, now) for institution_id, lesson in new],
    )
    await connection.execute(
        _SET_PENDING,
        [
            {
                "institution": institution_id,
                "enrollment": enrollment.id,
                "pending": enrollment.lessons_pending,
                "pending_amount": enrollment.pending_fen,
                "now": now,
            }
            for institution_id, enrollment in counted
        ],
    )


def _inserted(institution_id: UUID, lesson: LessonRow, now: datetime) -> dict[str, Any]:
    return {
        "institution_id": institution_id,
        "status": LessonStatus.pending_confirmation,
        "created_at": now,
        **{name: getattr(lesson, name) for name in _INSERTED},
    }


def _due(today: date) -> tuple[ColumnElement[bool], ...]:
    # An institution being wound down gets nothing more by silence: its pending lessons go back
    # to the payers (app.winddown), and auto-confirming one meanwhile would race that.
    wound_down = exists().where(WindDown.institution_id == Lesson.institution_id)
    return (
        Lesson.status == LessonStatus.pending_confirmation,
        Lesson.confirm_due_on < today,
        ~wound_down,
    )


async def locked_held_lessons(
    session: AsyncSession, institution_id: UUID, enrollment_ids: Collection[UUID]
) -> Sequence[Lesson]:
    """The lessons of these enrollments whose money is held (pending confirmation or disputed),
    locked in id order."""
    return (
        await session.scalars(
            select(Lesson)
            .where(
                Lesson.institution_id == institution_id,
                Lesson.enrollment_id.in_(enrollment_ids),
                Lesson.status.in_((LessonStatus.pending_confirmation, LessonStatus.disputed)),
            )
            .order_by(Lesson.id)
            .with_for_update()
        )
    ).all()


async def claim_due(session: AsyncSession, today: date, limit: int) -> Sequence[Lesson]:
    """Up to `limit` lessons of one institution whose confirmation time has passed by `today`,
    locked. Rows another transaction holds are skipped (on PostgreSQL), so two runs share the work
    and a parent's answer in progress is never waited for. One institution per batch, because a
    ledger transaction touches one institution only (app.ledger)."""
    institution_id = await session.scalar(
        select(Lesson.institution_id)
        .where(*_due(today))
        .order_by(Lesson.confirm_due_on, Lesson.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if institution_id is None:
        return []
    return (
        await session.scalars(
            select(Lesson)
            .where(Lesson.institution_id == institution_id, *_due(today))
            .order_by(Lesson.confirm_due_on, Lesson.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()


async def page(
    session: AsyncSession,
    institution_id: UUID,
    enrollment_id: UUID,
    status: LessonStatus | None,
    page_request: PageRequest,
) -> tuple[Sequence[Lesson], str | None]:
    """An enrollment's lessons in the order they were given."""
    query = select(Lesson).where(
        Lesson.institution_id == institution_id, Lesson.enrollment_id == enrollment_id
    )
    if status is not None:
        query = query.where(Lesson.status == status)
    return await paginate(session, query, page_request, Lesson.occurred_at, Lesson.id)


async def visible_lesson(
    session: AsyncSession, caller: Principal, lesson_id: UUID, *, lock: bool = False
) -> Lesson:
    """The lesson, if the caller sees its enrollment (its institution, its parent, the regulator of
    its jurisdiction, the operator); else 404, as if it did not exist. `lock` takes its row lock."""
    lesson = await scoped(
        session,
        caller,
        Lesson,
        lesson_id,
        enrollment_of=lambda found: found.enrollment_id,
        lock=lock,
    )
    if lesson is None:
        raise LessonNotFound(f"no lesson {lesson_id}")
    return lesson
