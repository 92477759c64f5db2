"""Lessons (消课): recorded by the institution, confirmed or disputed by the parent, auto-confirmed
after `parent_auto_confirm_workdays` working days of silence (from the later of the lesson and its
recording, app.lessons.rules), and a dispute resolved by the regulator (either way) or by the
institution (conceding only).

A lesson is in one of its enrollment's counters by its status (`COUNTERS`): pending, disputed, or
released. Releasing (a confirmation, an auto-confirmation or a resolution for the institution) posts
the lesson's money from the enrollment's prepaid account to releasable; a dispute moves no money,
and a resolution for the parent frees the lesson's count and money for refund without an entry.

Concurrency: the enrollment's row lock serialises every change of its counters, so two recordings
can never both take its last lesson (and the CHECK constraint on the counters backs that). Locks are
always taken in one order: the lesson row, then enrollment rows in id order, then the institution's
ledger (app.ledger), the order payments and refunds keep too. Recording locks no existing lesson.
A parent's answer or a resolution takes its lesson's and enrollment's locks in one statement (and a
release the ledger's too, after them: `repository.locked_answered`); the auto-confirm job claims
due lessons skipping those locked, then locks their enrollments in id order, then the ledger.

The answers, resolutions and releases run on SQLAlchemy Core with statements built once, as
recording does: the lessons as `LessonRow`s (new ones made with `dataclasses.replace`), the
enrollments as `LockedEnrollment`s, and both written back in one statement
(`repository.write_answered`). A wind-down's return of held lessons stays on the ORM objects its
refunds use, counted by the same rule (`_recount`).
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import NamedTuple
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.auth.principal import Principal
from app.balances.service import profiles_of_institutions
from app.db.unique import retry_on_unique_violation
from app.enrollments import repository as enrollment_repository
from app.enrollments.errors import EnrollmentNotFound
from app.jurisdictions.profile import RuleProfile
from app.kit.clock import utcnow
from app.kit.errors import DomainError
from app.kit.money import lessons_amount
from app.kit.pagination import PageRequest
from app.kit.workdays import local_date
from app.ledger import service as ledger
from app.ledger.books import books_and_enrollment_accounts
from app.ledger.errors import LedgerError
from app.ledger.types import EntryDraft
from app.lessons import repository
from app.lessons.errors import (
    ConfirmationWindowClosed,
    EnrollmentNotActive,
    LessonKeyReused,
    LessonNotDisputed,
    LessonNotPending,
    LessonsExhausted,
    ResolutionForbidden,
)
from app.lessons.rules import Deadlines, check_lesson_time
from app.lessons.schemas import LessonItem, Party
from app.lessons.types import AnsweredLesson, LessonRow, LockedEnrollment
from app.models import Enrollment, Lesson
from app.models.api_key import Role
from app.models.enrollment import EnrollmentStatus
from app.models.lesson import LessonStatus

AUTO_CONFIRM_BATCH = 500

_PENDING = ("lessons_pending", "pending_fen")
_DISPUTED = ("lessons_disputed", "disputed_fen")
_RELEASED = ("lessons_confirmed", "confirmed_fen")
# The enrollment counters (count, amount) a lesson of each status is in. A lesson resolved for the
# parent is in none: its lessons and money are free again.
COUNTERS: dict[LessonStatus, tuple[str, str]] = {
    LessonStatus.pending_confirmation: _PENDING,
    LessonStatus.disputed: _DISPUTED,
    LessonStatus.confirmed: _RELEASED,
    LessonStatus.auto_confirmed: _RELEASED,
    LessonStatus.resolved_for_institution: _RELEASED,
}


@dataclass(frozen=True, slots=True)
class Recorded:
    lesson: LessonRow
    created: bool  # False: the key was recorded before with the same lesson, returned again


Outcome = Recorded | DomainError


# --- counters and price ---------------------------------------------------------------------------


def price_of_next(enrollment: LockedEnrollment, count: int) -> int:
    """The price of the next `count` lessons of the enrollment by the remainder rule. The record
    that completes the package takes what the lessons held so far leave of its amount: that is the
    remainder rule's last lesson, and it stays exact when an earlier lesson was resolved for the
    parent (numbering by `used + 1` alone would then charge the remainder twice)."""
    used = enrollment.lessons_used
    if used + count == enrollment.lessons:
        return enrollment.amount_fen - enrollment.held_fen
    return lessons_amount(enrollment.amount_fen, enrollment.lessons, used + 1, count)


def _tally(
    enrollment: Enrollment | LockedEnrollment, lesson: Lesson | LessonRow, status: str, sign: int
) -> None:
    counters = COUNTERS.get(LessonStatus(status))
    if counters is not None:
        count_field, fen_field = counters
        setattr(enrollment, count_field, getattr(enrollment, count_field) + sign * lesson.count)
        setattr(enrollment, fen_field, getattr(enrollment, fen_field) + sign * lesson.amount_fen)


def _recount(
    enrollment: Enrollment | LockedEnrollment, lesson: Lesson | LessonRow, to: LessonStatus
) -> None:
    """Move the lesson's count and money between the enrollment's counters, from its status to
    `to`; the enrollment is completed once all its lessons are released."""
    _tally(enrollment, lesson, lesson.status, -1)
    _tally(enrollment, lesson, to, +1)
    if (
        enrollment.status == EnrollmentStatus.active
        and enrollment.lessons_confirmed == enrollment.lessons
    ):
        enrollment.status = EnrollmentStatus.completed


def _decided(
    enrollment: LockedEnrollment,
    lesson: LessonRow,
    to: LessonStatus,
    decided_by: str,
    now: datetime,
    note: str | None = None,
) -> LessonRow:
    """The lesson decided (moved out of pending or disputed for good), counted as such."""
    _recount(enrollment, lesson, to)
    return replace(lesson, status=to, decided_by=decided_by, decided_at=now, resolution_note=note)


# --- recording ----------------------------------------------------------------------------------


def _same_lesson(lesson: LessonRow, item: LessonItem) -> bool:
    return (
        lesson.enrollment_id == item.enrollment_id
        and lesson.occurred_at == item.occurred_at
        and lesson.count == item.count
    )


def _replayed(earlier: LessonRow, item: LessonItem) -> Outcome:
    """An item whose key was recorded before: that lesson again if it is the same one."""
    if _same_lesson(earlier, item):
        return Recorded(earlier, created=False)
    return LessonKeyReused(
        f"lesson_key {item.lesson_key!r} already records lesson {earlier.id}, "
        "with another enrollment, time or count",
        lesson_id=str(earlier.id),
    )


def _new_lesson(
    item: LessonItem,
    enrollment: LockedEnrollment | None,
    profile: RuleProfile,
    deadlines: Deadlines,
    now: datetime,
) -> LessonRow:
    """The lesson `item` records in `enrollment` (None: the institution has no such enrollment),
    counted as pending there; or raise why not."""
    if enrollment is None:
        raise EnrollmentNotFound(f"no enrollment {item.enrollment_id}")
    if enrollment.status != EnrollmentStatus.active:
        raise EnrollmentNotActive(
            f"enrollment {enrollment.id} is {enrollment.status}",
            enrollment_status=enrollment.status,
        )
    if enrollment.refund_under_way:
        # Until the refund is paid or has failed, what the enrollment holds is being settled with
        # the payer: no new lesson may draw on it.
        raise EnrollmentNotActive(
            f"a refund of enrollment {enrollment.id} is on its way to the payer",
            enrollment_status=enrollment.status,
            refunded_fen=enrollment.refunded_fen,
        )
    check_lesson_time(profile, enrollment, item.occurred_at, now)
    used = enrollment.lessons_used
    if used + item.count > enrollment.lessons:
        raise LessonsExhausted(
            f"{item.count} lessons asked, {enrollment.lessons - used} of {enrollment.lessons} left",
            lessons=enrollment.lessons,
            lessons_used=used,
            count=item.count,
        )
    lesson = LessonRow(
        id=uuid4(),
        enrollment_id=enrollment.id,
        lesson_key=item.lesson_key,
        status=LessonStatus.pending_confirmation,
        count=item.count,
        first_no=used + 1,
        amount_fen=price_of_next(enrollment, item.count),
        occurred_at=item.occurred_at,
        confirm_due_on=deadlines.due_on(item.occurred_at),
        dispute_reason=None,
        decided_by=None,
        decided_at=None,
        resolution_note=None,
        created_at=now,
    )
    enrollment.hold(lesson.count, lesson.amount_fen)
    return lesson


class Placed(NamedTuple):
    """An item to record, and the institution recording it."""

    institution_id: UUID
    item: LessonItem


async def record_placed(
    connection: AsyncConnection, placed: Sequence[Placed], now: datetime
) -> list[Outcome]:
    """Record each item for its institution, in order, accepted or refused on its own: a refusal
    changes nothing, and a later item of the same enrollment sees the earlier ones. The
    enrollments are locked in (institution, id) order in one statement (across institutions when
    the items are of several: a group commit), and the keys are read after the locks (so a concurrent record of the
    same enrollment and key, committed while this one waited, is found and replayed); the new
    lessons and the counters they change are written together. A key the institution used before
    returns that lesson when the item is the same lesson, and is refused when not."""
    # Read before the locks (usually remembered: no statement), so that they are held no longer.
    profiles = await profiles_of_institutions(
        connection, {institution_id for institution_id, _ in placed}
    )
    enrollments = await repository.locked_for_recording(
        connection, {(institution_id, item.enrollment_id) for institution_id, item in placed}
    )
    known = await repository.lessons_by_key(
        connection, {(institution_id, item.lesson_key) for institution_id, item in placed}
    )
    deadlines = {
        institution_id: Deadlines(now, profile.parent_auto_confirm_workdays)
        for institution_id, profile in profiles.items()
    }
    outcomes: list[Outcome] = []
    new: list[tuple[UUID, LessonRow]] = []
    for institution_id, item in placed:
        earlier = known.get((institution_id, item.lesson_key))
        if earlier is not None:
            outcomes.append(_replayed(earlier, item))
            continue
        try:
            lesson = _new_lesson(
                item,
                enrollments.get((institution_id, item.enrollment_id)),
                profiles[institution_id],
                deadlines[institution_id],
                now,
            )
        except DomainError as error:
            outcomes.append(error)
            continue
        new.append((institution_id, lesson))
        known[(institution_id, lesson.lesson_key)] = lesson
        outcomes.append(Recorded(lesson, created=True))
    if new:
        counted = [
            (institution_id, enrollments[(institution_id, enrollment_id)])
            for institution_id, enrollment_id in dict.fromkeys(
                (institution_id, lesson.enrollment_id) for institution_id, lesson in new
            )
        ]
        # A concurrent request recording the same key for another enrollment makes this a retry,
        # which then finds the key and answers as above.
        with retry_on_unique_violation():
            await repository.write_recorded(connection, new, counted, now)
    return outcomes


async def record_lessons(
    session: AsyncSession, institution_id: UUID, items: Sequence[LessonItem], now: datetime
) -> list[Outcome]:
    """Record the institution's items as `record_placed` does."""
    placed = [Placed(institution_id, item) for item in items]
    return await record_placed(await session.connection(), placed, now)


async def record_lesson(
    session: AsyncSession, institution_id: UUID, item: LessonItem, now: datetime
) -> Recorded:
    [outcome] = await record_lessons(session, institution_id, [item], now)
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome


# --- the parent's answer, the resolution, the release ---------------------------------------------


def _require_pending(lesson: LessonRow) -> None:
    if lesson.status != LessonStatus.pending_confirmation:
        raise LessonNotPending(
            f"lesson {lesson.id} is {lesson.status}", lesson_status=lesson.status
        )


async def _release_accounts(
    connection: AsyncConnection, institution_id: UUID, enrollment_ids: list[UUID]
) -> tuple[UUID, dict[UUID, UUID]]:
    """The institution's releasable account and each enrollment's prepaid account, opened if need
    be (each enrollment has had one since it was paid, so this only reads)."""
    books, prepaid = await books_and_enrollment_accounts(connection, institution_id, enrollment_ids)
    return books.releasable.id, {
        enrollment_id: account.id
        for enrollment_id, account in zip(enrollment_ids, prepaid, strict=True)
    }


async def _release(
    connection: AsyncConnection,
    institution_id: UUID,
    lessons: Sequence[LessonRow],
    enrollments: dict[UUID, LockedEnrollment],
    to: LessonStatus,
    decided_by: str,
    now: datetime,
    note: str | None = None,
    *,
    accounts: tuple[UUID, dict[UUID, UUID]] | None = None,
) -> list[LessonRow]:
    """Release lessons of one institution, locked with their enrollments: each lesson's money from
    its enrollment's prepaid account to releasable, in one ledger call, and the lessons moved to
    `to` and written with their enrollments' counters. `accounts` (releasable, prepaid by
    enrollment) when the caller read them already."""
    if accounts is None:
        accounts = await _release_accounts(
            connection, institution_id, sorted({lesson.enrollment_id for lesson in lessons})
        )
    releasable, prepaid = accounts
    drafts = [
        EntryDraft.transfer(
            f"lesson:{lesson.id}:release",
            "lesson_release",
            prepaid[lesson.enrollment_id],
            releasable,
            lesson.amount_fen,
        )
        for lesson in lessons
    ]
    results = await ledger.post_many(connection, institution_id, drafts)
    released: list[tuple[LessonRow, int | None]] = []
    for lesson, result in zip(lessons, results, strict=True):
        if isinstance(result, LedgerError):
            raise result  # the whole transaction rolls back: nothing half-released
        decided = _decided(enrollments[lesson.enrollment_id], lesson, to, decided_by, now, note)
        released.append((decided, result.seq))
    await repository.write_answered(
        connection, institution_id, released, list(enrollments.values()), now
    )
    return [lesson for lesson, _ in released]


def _known_accounts(answered: AnsweredLesson) -> tuple[UUID, dict[UUID, UUID]] | None:
    """The accounts a release of the lesson posts to, when its lock statement found them open."""
    if answered.prepaid_account_id is None or answered.releasable_account_id is None:
        return None
    return answered.releasable_account_id, {answered.enrollment.id: answered.prepaid_account_id}


async def _release_answered(
    connection: AsyncConnection,
    answered: AnsweredLesson,
    to: LessonStatus,
    decided_by: str,
    now: datetime,
    note: str | None = None,
) -> LessonRow:
    [released] = await _release(
        connection,
        answered.institution_id,
        [answered.lesson],
        {answered.enrollment.id: answered.enrollment},
        to,
        decided_by,
        now,
        note,
        accounts=_known_accounts(answered),
    )
    return released


async def _write_one(
    connection: AsyncConnection, answered: AnsweredLesson, lesson: LessonRow, now: datetime
) -> LessonRow:
    """Write a lesson moved with no money moving, and its enrollment's counters."""
    await repository.write_answered(
        connection, answered.institution_id, [(lesson, None)], [answered.enrollment], now
    )
    return lesson


async def confirm_lesson(
    session: AsyncSession, caller: Principal, lesson_id: UUID, now: datetime
) -> LessonRow:
    """The parent confirms: the lesson's money is released. Confirming again changes nothing."""
    connection = await session.connection()
    answered = await repository.locked_answered(connection, caller, lesson_id, ledger=True)
    if answered.lesson.status == LessonStatus.confirmed:
        return answered.lesson
    _require_pending(answered.lesson)
    return await _release_answered(connection, answered, LessonStatus.confirmed, "parent", now)


async def dispute_lesson(
    session: AsyncSession, caller: Principal, lesson_id: UUID, reason: str, now: datetime
) -> LessonRow:
    """The parent disputes: the lesson's money stays held in prepaid until resolved. Once the
    working days to answer have passed, silence has counted as consent (whether or not the
    auto-confirm job has run yet), so a dispute is too late."""
    connection = await session.connection()
    answered = await repository.locked_answered(connection, caller, lesson_id, ledger=False)
    lesson = answered.lesson
    _require_pending(lesson)
    if local_date(now) > lesson.confirm_due_on:
        raise ConfirmationWindowClosed(
            f"the time to answer ended on {lesson.confirm_due_on}; the lesson counts as confirmed",
            confirm_due_on=lesson.confirm_due_on.isoformat(),
        )
    _recount(answered.enrollment, lesson, LessonStatus.disputed)
    disputed = replace(lesson, status=LessonStatus.disputed, dispute_reason=reason)
    return await _write_one(connection, answered, disputed, now)


async def resolve_dispute(
    session: AsyncSession,
    caller: Principal,
    lesson_id: UUID,
    in_favor_of: Party,
    note: str | None,
    now: datetime,
) -> LessonRow:
    """The regulator of the institution's jurisdiction resolves either way; the institution may
    only concede. For the institution the lesson is released like a confirmed one; for the parent
    its lessons and money are freed (refundable again), with no entry: the money never left
    prepaid."""
    connection = await session.connection()
    answered = await repository.locked_answered(
        connection, caller, lesson_id, ledger=in_favor_of is Party.institution
    )
    lesson = answered.lesson
    if caller.role is Role.institution and in_favor_of is Party.institution:
        raise ResolutionForbidden(
            "an institution may only concede a dispute (in_favor_of: parent); the regulator "
            "decides for the institution"
        )
    if lesson.status != LessonStatus.disputed:
        raise LessonNotDisputed(
            f"lesson {lesson.id} is {lesson.status}", lesson_status=lesson.status
        )
    if in_favor_of is Party.institution:
        return await _release_answered(
            connection, answered, LessonStatus.resolved_for_institution, caller.role, now, note
        )
    resolved = _decided(
        answered.enrollment, lesson, LessonStatus.resolved_for_parent, caller.role, now, note
    )
    return await _write_one(connection, answered, resolved, now)


def return_held_lessons(
    lessons: Sequence[Lesson],
    enrollments: dict[UUID, Enrollment],
    decided_by: str,
    note: str,
    now: datetime,
) -> None:
    """Lessons pending or disputed, locked with their enrollments, resolved for the parent: their
    money, never released, is refundable again (a wind-down: nobody is left to deliver or answer
    for them). No entry: the money never left prepaid."""
    for lesson in lessons:
        enrollment = enrollments[lesson.enrollment_id]
        _recount(enrollment, lesson, LessonStatus.resolved_for_parent)
        enrollment.updated_at = now
        lesson.status = LessonStatus.resolved_for_parent
        lesson.decided_by = decided_by
        lesson.decided_at = now
        lesson.resolution_note = note


async def auto_confirm_lessons(session: AsyncSession, as_of: datetime) -> int:
    """One batch of the auto-confirm job: lessons still pending after their working days to answer
    have fully passed (`confirm_due_on` before `as_of`'s local date) are auto-confirmed and released,
    up to AUTO_CONFIRM_BATCH of one institution at a time. Returns how many; run it until it
    returns 0 (`app.jobs.registry.in_batches`). Running it twice, or on two processes at once,
    releases each lesson once: a lesson is claimed under its row lock and only while pending."""
    connection = await session.connection()
    institution_id, due = await repository.claim_due(
        connection, local_date(as_of), AUTO_CONFIRM_BATCH
    )
    if institution_id is None or not due:
        return 0
    locked = await repository.locked_for_recording(
        connection, {(institution_id, lesson.enrollment_id) for lesson in due}
    )
    enrollments = {enrollment_id: row for (_, enrollment_id), row in locked.items()}
    await _release(
        connection, institution_id, due, enrollments, LessonStatus.auto_confirmed, "auto", utcnow()
    )
    return len(due)


async def enrollment_lessons(
    session: AsyncSession,
    caller: Principal,
    enrollment_id: UUID,
    status: LessonStatus | None,
    page: PageRequest,
) -> tuple[Sequence[Lesson], str | None]:
    enrollment = await enrollment_repository.visible_enrollment(session, caller, enrollment_id)
    return await repository.page(session, enrollment.institution_id, enrollment_id, status, page)
