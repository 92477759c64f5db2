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

from sqlalchemy import (
    ColumnElement,
    Executable,
    String,
    Table,
    bindparam,
    exists,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.auth.principal import Principal
from app.auth.scope import scoped, sees
from app.db.batch import in_list, pairs_bound, pairs_in
from app.kit.pagination import PageRequest, paginate
from app.ledger import service as ledger_service
from app.ledger.types import AccountKind
from app.lessons.errors import LessonNotFound
from app.lessons.types import AnsweredLesson, LessonRow, LockedEnrollment
from app.models import Enrollment, Institution, LedgerAccount, LedgerHead, Lesson, WindDown
from app.models.lesson import LessonStatus

lessons = cast(Table, Lesson.__table__)
enrollments = cast(Table, Enrollment.__table__)
institutions = cast(Table, Institution.__table__)
accounts = cast(Table, LedgerAccount.__table__)
heads = cast(Table, LedgerHead.__table__)
wind_downs = cast(Table, WindDown.__table__)

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

# The enrollments in (institution, id) order, as every lock of several enrollments takes them (so
# that two transactions locking several never wait on each other in a cycle, whatever institutions
# they span), and the lessons of the keys, each statement spelled once per database: of one
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
    .order_by(enrollments.c.institution_id, enrollments.c.id)
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


async def _by_pairs(
    connection: AsyncConnection,
    wanted: Collection[_Keyed],
    of_one: dict[str, Executable],
    across: dict[str, Executable],
    listed: str,
) -> Any:  # a CursorResult of the rows
    """The rows of `wanted` (institution, key): by the statement naming the institution when they
    are all of one (it stays on that institution's shard), else by the one taking pairs."""
    dialect = connection.dialect.name
    institution_id = _one_institution(wanted)
    if institution_id is not None:
        bound = {"institution_id": institution_id, listed: [key for _, key in wanted]}
        return await connection.execute(of_one[dialect], bound)
    return await connection.execute(across[dialect], pairs_bound("wanted", wanted, dialect))


async def locked_for_recording(
    connection: AsyncConnection, wanted: Collection[tuple[UUID, UUID]]
) -> dict[tuple[UUID, UUID], LockedEnrollment]:
    """The enrollments among `wanted` (institution, enrollment id), locked in id order, by the
    same pairs."""
    rows = await _by_pairs(connection, wanted, _LOCK_ENROLLMENTS, _LOCK_ENROLLMENTS_ACROSS, "ids")
    return {(row[0], row.id): LockedEnrollment(*row[1:]) for row in rows}


async def lessons_by_key(
    connection: AsyncConnection, wanted: Collection[tuple[UUID, str]]
) -> dict[tuple[UUID, str], LessonRow]:
    """The lessons recorded under `wanted` (institution, lesson key), by the same pairs."""
    rows = await _by_pairs(connection, wanted, _LESSONS_BY_KEY, _LESSONS_BY_KEY_ACROSS, "keys")
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


def _due() -> tuple[ColumnElement[bool], ...]:
    # An institution being wound down gets nothing more by silence: its pending lessons go back
    # to the payers (app.winddown), and auto-confirming one meanwhile would race that.
    wound_down = exists().where(wind_downs.c.institution_id == lessons.c.institution_id)
    return (
        lessons.c.status == LessonStatus.pending_confirmation,
        lessons.c.confirm_due_on < bindparam("today", type_=lessons.c.confirm_due_on.type),
        ~wound_down,
    )


_DUE_ORDER = (lessons.c.confirm_due_on, lessons.c.id)
_FIRST_DUE = (
    select(lessons.c.institution_id)
    .where(*_due())
    .order_by(*_DUE_ORDER)
    .limit(1)
    .with_for_update(skip_locked=True)
)
_DUE_OF_INSTITUTION = (
    select(*_LESSON_COLUMNS)
    .where(lessons.c.institution_id == bindparam("institution_id"), *_due())
    .order_by(*_DUE_ORDER)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
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


async def claim_due(
    connection: AsyncConnection, today: date, limit: int
) -> tuple[UUID | None, list[LessonRow]]:
    """Up to `limit` lessons of one institution whose confirmation time has passed by `today`,
    locked, with that institution. Rows another transaction holds are skipped (on PostgreSQL), so
    two runs share the work and a parent's answer in progress is never waited for. One institution
    per batch, because a ledger transaction touches one institution only (app.ledger)."""
    institution_id = await connection.scalar(_FIRST_DUE, {"today": today})
    if institution_id is None:
        return None, []
    rows = await connection.execute(
        _DUE_OF_INSTITUTION, {"institution_id": institution_id, "today": today, "limit": limit}
    )
    return institution_id, [LessonRow(*row) for row in rows]


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


# --- the parent's answer, the resolution, the release ---------------------------------------------
#
# On SQLAlchemy Core too, statements built once: a confirmation is the lesson and its enrollment
# locked and read in one statement, the ledger's post, and the lesson and the enrollment written
# in one more.

_ANSWERED_COLUMNS = [lessons.c.institution_id, *_LESSON_COLUMNS]


def _account_code(prefix: str, uuid_column: Any, dialect: str) -> ColumnElement[str]:
    """The code of a ledger account named after a row's id (`prepaid:<enrollment id>`, as
    app.ledger.prepaid_spec spells it): PostgreSQL prints a uuid in that form; SQLite keeps it as
    32 hex digits, hyphenated here."""
    if dialect == "postgresql":
        return literal(prefix) + sql_cast(uuid_column, String)
    parts = [func.substr(uuid_column, start, length) for start, length in _UUID_GROUPS]
    code: ColumnElement[str] = literal(prefix) + parts[0]
    for part in parts[1:]:
        code = code + "-" + part
    return code


_UUID_GROUPS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))


def _lock_answered(dialect: str, ledger: bool) -> Executable:
    prepaid = accounts.alias("prepaid")
    releasable = accounts.alias("releasable")
    query = (
        select(
            *_ANSWERED_COLUMNS,
            institutions.c.jurisdiction_code,
            prepaid.c.id.label("prepaid_account_id"),
            releasable.c.id.label("releasable_account_id"),
            *[column.label(f"enrollment_{column.name}") for column in _ENROLLMENT_COLUMNS],
        )
        .join(
            enrollments,
            (enrollments.c.institution_id == lessons.c.institution_id)
            & (enrollments.c.id == lessons.c.enrollment_id),
        )
        .join(institutions, institutions.c.id == lessons.c.institution_id)
        .outerjoin(
            prepaid,
            (prepaid.c.institution_id == lessons.c.institution_id)
            & (
                prepaid.c.code
                == _account_code(f"{AccountKind.prepaid}:", enrollments.c.id, dialect)
            ),
        )
        .outerjoin(
            releasable,
            (releasable.c.institution_id == lessons.c.institution_id)
            & (releasable.c.code == str(AccountKind.releasable)),
        )
        .where(lessons.c.id == bindparam("lesson_id"))
    )
    if not ledger:
        # The lesson's row first, then its enrollment's: the lock order of every lesson flow.
        return query.with_for_update(of=[lessons, enrollments])
    # ... and then the institution's ledger head, which every paid lesson's institution has: a
    # release's ledger lock in the same round trip (PostgreSQL takes a statement's row locks in
    # the order FOR UPDATE OF names their tables).
    return query.join(heads, heads.c.institution_id == lessons.c.institution_id).with_for_update(
        of=[lessons, enrollments, heads]
    )


_LOCK_ANSWERED: dict[tuple[str, bool], Executable] = {
    (dialect, ledger): _lock_answered(dialect, ledger)
    for dialect in _DIALECTS
    for ledger in (False, True)
}


async def locked_answered(
    connection: AsyncConnection, caller: Principal, lesson_id: UUID, *, ledger: bool
) -> AnsweredLesson:
    """The lesson with its enrollment, both locked, if the caller sees the enrollment (its
    institution, its parent, the regulator of its jurisdiction, the operator); else 404, as if it
    did not exist. With the ids of the ledger accounts a release posts to, when they are open.
    `ledger`: for a release, the institution's ledger lock is taken too, after them."""
    row = (
        await connection.execute(
            _LOCK_ANSWERED[connection.dialect.name, ledger], {"lesson_id": lesson_id}
        )
    ).first()
    if row is None:
        raise LessonNotFound(f"no lesson {lesson_id}")
    institution_id, *lesson = row[:_LESSON_END]
    found = LessonRow(*lesson)
    if not sees(caller, institution_id, row.jurisdiction_code, found.enrollment_id):
        raise LessonNotFound(f"no lesson {lesson_id}")
    if ledger:
        ledger_service.locked_by_caller(connection, institution_id)
    return AnsweredLesson(
        institution_id,
        found,
        LockedEnrollment(*row[_LESSON_END + 3 :]),
        row.prepaid_account_id,
        row.releasable_account_id,
    )


_LESSON_END = len(_ANSWERED_COLUMNS)  # then the jurisdiction, the two accounts, the enrollment


# The lessons answered, resolved or released and the counters of their enrollments. PostgreSQL:
# one statement and one round trip whatever the batch, each column as one array.
_ANSWER = text("""
    WITH answered AS (
        UPDATE lessons
           SET status = a.status, dispute_reason = a.dispute_reason, decided_by = a.decided_by,
               decided_at = a.decided_at, resolution_note = a.resolution_note,
               release_seq = a.release_seq
          FROM unnest(CAST(:lesson_id AS uuid[]), CAST(:status AS varchar[]),
                      CAST(:dispute_reason AS varchar[]), CAST(:decided_by AS varchar[]),
                      CAST(:decided_at AS timestamptz[]), CAST(:resolution_note AS varchar[]),
                      CAST(:release_seq AS bigint[]))
            AS a(id, status, dispute_reason, decided_by, decided_at, resolution_note, release_seq)
         WHERE lessons.institution_id = :institution_id AND lessons.id = a.id
    )
    UPDATE enrollments
       SET status = c.status,
           lessons_confirmed = c.lessons_confirmed, confirmed_fen = c.confirmed_fen,
           lessons_pending = c.lessons_pending, pending_fen = c.pending_fen,
           lessons_disputed = c.lessons_disputed, disputed_fen = c.disputed_fen,
           updated_at = :now
      FROM unnest(CAST(:enrollment_id AS uuid[]), CAST(:enrollment_status AS varchar[]),
                  CAST(:lessons_confirmed AS integer[]), CAST(:confirmed_fen AS bigint[]),
                  CAST(:lessons_pending AS integer[]), CAST(:pending_fen AS bigint[]),
                  CAST(:lessons_disputed AS integer[]), CAST(:disputed_fen AS bigint[]))
            AS c(id, status, lessons_confirmed, confirmed_fen, lessons_pending, pending_fen,
                 lessons_disputed, disputed_fen)
     WHERE enrollments.institution_id = :institution_id AND enrollments.id = c.id
""")
_DECIDED = ("status", "dispute_reason", "decided_by", "decided_at", "resolution_note")
_COUNTED = (
    "lessons_confirmed",
    "confirmed_fen",
    "lessons_pending",
    "pending_fen",
    "lessons_disputed",
    "disputed_fen",
)
# SQLite: the same two writes as executemany (a bound name may not be a column's).
_SET_DECIDED = (
    update(lessons)
    .where(
        lessons.c.institution_id == bindparam("institution"),
        lessons.c.id == bindparam("lesson"),
    )
    .values(
        {
            **{name: bindparam(f"new_{name}", type_=lessons.c[name].type) for name in _DECIDED},
            "release_seq": bindparam("new_release_seq"),
        }
    )
)
_SET_COUNTED = (
    update(enrollments)
    .where(
        enrollments.c.institution_id == bindparam("institution"),
        enrollments.c.id == bindparam("enrollment"),
    )
    .values(
        {
            **{name: bindparam(f"new_{name}") for name in ("status", *_COUNTED)},
            "updated_at": bindparam("now", type_=enrollments.c.updated_at.type),
        }
    )
)


async def write_answered(
    connection: AsyncConnection,
    institution_id: UUID,
    decided: Sequence[tuple[LessonRow, int | None]],
    counted: Sequence[LockedEnrollment],
    now: datetime,
) -> None:
    """Write the lessons `decided` (each as it is now, with the entry that released its money if
    one did) and the status and counters of the enrollments `counted`, changed `now`."""
    if connection.dialect.name == "postgresql":
        await connection.execute(
            _ANSWER,
            {
                "institution_id": institution_id,
                "lesson_id": [lesson.id for lesson, _ in decided],
                **{name: [getattr(lesson, name) for lesson, _ in decided] for name in _DECIDED},
                "release_seq": [seq for _, seq in decided],
                "enrollment_id": [enrollment.id for enrollment in counted],
                "enrollment_status": [enrollment.status for enrollment in counted],
                **{name: [getattr(e, name) for e in counted] for name in _COUNTED},
                "now": now,
            },
        )
        return
    await connection.execute(
        _SET_DECIDED,
        [
            {
                "institution": institution_id,
                "lesson": lesson.id,
                **{f"new_{name}": getattr(lesson, name) for name in _DECIDED},
                "new_release_seq": seq,
            }
            for lesson, seq in decided
        ],
    )
    await connection.execute(
        _SET_COUNTED,
        [
            {
                "institution": institution_id,
                "enrollment": enrollment.id,
                **{f"new_{name}": getattr(enrollment, name) for name in ("status", *_COUNTED)},
                "now": now,
            }
            for enrollment in counted
        ],
    )
