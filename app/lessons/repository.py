"""The lesson queries: the locks of the lesson flows, the keys already used, the due lessons, pages."""

from collections.abc import Collection, Sequence
from datetime import date
from uuid import UUID

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.auth.scope import scoped
from app.kit.pagination import PageRequest, paginate
from app.lessons.errors import LessonNotFound
from app.models import Lesson, WindDown
from app.models.lesson import LessonStatus


async def lessons_by_key(
    session: AsyncSession, institution_id: UUID, keys: Collection[str]
) -> dict[str, Lesson]:
    rows = await session.scalars(
        select(Lesson).where(Lesson.institution_id == institution_id, Lesson.lesson_key.in_(keys))
    )
    return {lesson.lesson_key: lesson for lesson in rows}


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
