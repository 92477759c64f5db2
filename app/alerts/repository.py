"""The alert engine's reads: an institution's open alerts, its day of outflows, its escrow balance
at a day's start, its recorded lessons, and its level history."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.pagination import PageRequest, paginate
from app.models import Alert, AlertLevelChange, Instruction, LedgerEntry, LedgerPosting, Lesson
from app.models.instruction import InstructionKind, InstructionStatus


async def open_alerts(session: AsyncSession, institution_id: UUID) -> list[Alert]:
    return list(
        await session.scalars(
            select(Alert).where(Alert.institution_id == institution_id, Alert.closed_at.is_(None))
        )
    )


async def outflows_between(
    session: AsyncSession, institution_id: UUID, start: datetime, end: datetime
) -> list[tuple[str, str, int]]:
    """(instruction id, kind, amount) of every payout and refund instructed in [start, end) and
    not failed (a failed one's money never left; a returned one left and came back)."""
    rows = await session.execute(
        select(Instruction.id, Instruction.kind, Instruction.amount_fen).where(
            Instruction.institution_id == institution_id,
            Instruction.kind.in_([InstructionKind.payout, InstructionKind.refund]),
            Instruction.status != InstructionStatus.failed,
            Instruction.created_at >= start,
            Instruction.created_at < end,
        )
    )
    return [(row.id, row.kind, int(row.amount_fen)) for row in rows]


async def posted_since(
    session: AsyncSession, institution_id: UUID, account_id: UUID, moment: datetime
) -> int:
    """The raw sum (debits minus credits) posted to the account from `moment` on, read by the
    entries' (institution_id, posted_at) index: its balance then is its balance now less this."""
    since = await session.scalar(
        select(func.coalesce(func.sum(LedgerPosting.amount_fen), 0))
        .select_from(LedgerEntry)
        .join(
            LedgerPosting,
            and_(
                LedgerPosting.institution_id == LedgerEntry.institution_id,
                LedgerPosting.entry_seq == LedgerEntry.seq,
            ),
        )
        .where(
            LedgerEntry.institution_id == institution_id,
            LedgerEntry.posted_at >= moment,
            LedgerPosting.account_id == account_id,
        )
    )
    return int(since or 0)


async def lessons_recorded(
    session: AsyncSession, institution_id: UUID, since: datetime, day_start: datetime, end: datetime
) -> tuple[int, int]:
    """Lessons recorded (their counts summed) in [since, day_start) and in [day_start, end)."""
    earlier = func.coalesce(
        func.sum(case((Lesson.created_at < day_start, Lesson.count), else_=0)), 0
    )
    today = func.coalesce(
        func.sum(case((Lesson.created_at >= day_start, Lesson.count), else_=0)), 0
    )
    row = (
        await session.execute(
            select(earlier, today).where(
                Lesson.institution_id == institution_id,
                Lesson.created_at >= since,
                Lesson.created_at < end,
            )
        )
    ).one()
    return int(row[0]), int(row[1])


async def level_changes_page(
    session: AsyncSession, institution_id: UUID, page: PageRequest
) -> tuple[Sequence[AlertLevelChange], str | None]:
    """The institution's level changes, oldest first."""
    query = select(AlertLevelChange).where(AlertLevelChange.institution_id == institution_id)
    return await paginate(session, query, page, AlertLevelChange.changed_at, AlertLevelChange.id)
