"""Winding an institution down (机构退费清算): when it closes or runs away, the regulator freezes it and
every enrollment's unconsumed money goes back to its payer, through the normal refund instructions
(app.refunds, app.instructions: the outbox sends them).

Unconsumed here is every fen not yet released to the institution: what was paid less lessons
released (confirmed, auto-confirmed, resolved for the institution) less refunds already under way.
Lessons pending confirmation and lessons in dispute are resolved for the parent first (nobody is
left to deliver or answer for them), so their money is refunded too; lessons released but not yet
paid out are the institution's and stay releasable.

Each enrollment is refunded once, however often the order is given or a run dies half-way:
- the enrollments are gone through in id order, `WIND_DOWN_BATCH_SIZE` (200) per transaction, and
  the wind-down's row (locked by each batch) carries the last one done, committed with the
  batch's refunds; a second order, or the same order after a crash, resumes after it, and two at
  once take turns;
- a refund the wind-down makes has an id derived from the wind-down and the enrollment, and the
  unique (wind_down_id, enrollment_id) of refunds backs that in the database; its ledger
  reservation and instruction are keyed by the refund's id as every refund's are.

A parent's refund request still awaiting the institution's answer is approved by the wind-down
(with everything refundable) and counted as the wind-down's, not doubled; a refund already
approved or sent goes on as it is, and the wind-down refunds only what it left.

Lock order, as the lesson and refund flows keep it: the wind-down's row, then the batch's held
lessons, its open refunds, its enrollments (each in id order), then the institution's ledger.
"""

import uuid
from datetime import datetime
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import record
from app.auth.principal import Principal
from app.db.unit import Database
from app.enrollments.repository import locked_enrollments
from app.enrollments.rules import refundable_fen
from app.institutions import service as institutions
from app.kit.clock import utcnow
from app.kit.crashpoints import crash_point
from app.lessons import repository as lesson_repository
from app.lessons.service import return_held_lessons
from app.models import Enrollment, Refund, WindDown
from app.models.refund import RefundStatus
from app.models.wind_down import WindDownStatus
from app.refunds import repository as refund_repository
from app.refunds import service as refunds
from app.winddown.errors import WindDownNotFound
from app.winddown.schemas import RefundTally, WindDownSummary

# Who decided the lessons and refunds a wind-down settles (fits Lesson/Refund.decided_by).
DECIDED_BY = "wind_down"
NOTE = "the institution is wound down by the regulator: money not released goes back to the payer"


def refund_id_for(wind_down_id: UUID, enrollment_id: UUID) -> UUID:
    """The id of the refund the wind-down makes for the enrollment: one per pair, by construction."""
    return uuid.uuid5(wind_down_id, str(enrollment_id))


async def order(
    session: AsyncSession, caller: Principal, institution_id: UUID, reason: str, now: datetime
) -> WindDown:
    """Freeze the institution (404 outside the caller's scope) and record the order, or find the
    one given before. The institution's row lock, taken by the freeze, makes two orders at once
    take turns, so there is one wind-down."""
    await institutions.freeze(session, caller, institution_id)
    wind_down = await session.get(WindDown, institution_id)
    resumed = wind_down is not None
    if wind_down is None:
        wind_down = WindDown(
            institution_id=institution_id,
            id=uuid.uuid4(),
            reason=reason,
            ordered_by=caller.identity,
            status=WindDownStatus.running,
            enrollments_covered=0,
            created_at=now,
            updated_at=now,
        )
        session.add(wind_down)
        await session.flush()
    await record(
        session,
        "wind_down.order",
        actor=caller,
        institution_id=institution_id,
        object_type="wind_down",
        object_id=wind_down.id,
        details={"reason": reason, "resumed": resumed},
    )
    return wind_down


async def run_batch(
    session: AsyncSession, institution_id: UUID, now: datetime, batch_size: int
) -> bool:
    """Refund the next `batch_size` enrollments of the wind-down; False once none is left (and the
    wind-down is then completed)."""
    wind_down = await session.scalar(
        select(WindDown).where(WindDown.institution_id == institution_id).with_for_update()
    )
    if wind_down is None or wind_down.status == WindDownStatus.completed:
        return False
    query = select(Enrollment.id).where(Enrollment.institution_id == institution_id)
    if wind_down.last_enrollment_id is not None:
        query = query.where(Enrollment.id > wind_down.last_enrollment_id)
    ids = (await session.scalars(query.order_by(Enrollment.id).limit(batch_size))).all()
    wind_down.updated_at = now
    if not ids:
        wind_down.status = WindDownStatus.completed
        wind_down.completed_at = now
        await session.flush()
        return False
    held = await lesson_repository.locked_held_lessons(session, institution_id, ids)
    open_refunds = await refund_repository.locked_open_refunds(session, institution_id, ids)
    enrollments = await locked_enrollments(session, institution_id, ids)
    return_held_lessons(held, enrollments, DECIDED_BY, NOTE, now)
    for enrollment_id in ids:
        await _refund(
            session, wind_down, enrollments[enrollment_id], open_refunds.get(enrollment_id, []), now
        )
    wind_down.last_enrollment_id = ids[-1]
    wind_down.enrollments_covered += len(ids)
    await session.flush()
    return True


async def _refund(
    session: AsyncSession,
    wind_down: WindDown,
    enrollment: Enrollment,
    open_refunds: list[Refund],
    now: datetime,
) -> None:
    if refundable_fen(enrollment) == 0:
        return  # nothing paid is left unreleased, or a refund under way already takes it all
    requested = [r for r in open_refunds if r.status == RefundStatus.requested]
    if requested:
        # The payer asked already: approved now, with everything refundable, and counted as the
        # wind-down's.
        refund = await refunds.approve_refund(
            session, wind_down.institution_id, requested[0].id, decided_by=DECIDED_BY
        )
        refund.wind_down_id = wind_down.id
        return
    await refunds.order_refund(
        session,
        wind_down.institution_id,
        enrollment.id,
        refund_id=refund_id_for(wind_down.id, enrollment.id),
        reason=f"wind-down: {wind_down.reason}"[:500],
        decided_by=DECIDED_BY,
        wind_down_id=wind_down.id,
        now=now,
    )


async def wind_down(
    db: Database, caller: Principal, institution_id: UUID, reason: str
) -> WindDownSummary:
    """Order (or resume) the wind-down and go through every enrollment, a batch per transaction;
    the summary as it then stands. A process that dies between batches leaves committed batches
    done and the rest for the next order (or the `resume_wind_downs` job)."""
    await db.run(lambda session: order(session, caller, institution_id, reason, utcnow()))
    await finish(db, institution_id)
    return await db.run(lambda session: summary(session, institution_id))


async def finish(db: Database, institution_id: UUID) -> None:
    size = db.settings.wind_down_batch_size
    while await db.run(lambda session: run_batch(session, institution_id, utcnow(), size)):
        crash_point("wind_down.batch_committed")


async def resume_wind_downs(db: Database, as_of: datetime) -> int:
    """The job: finish every wind-down still running (one whose order died half-way)."""

    async def running(session: AsyncSession) -> list[UUID]:
        query = select(WindDown.institution_id).where(WindDown.status == WindDownStatus.running)
        return list((await session.scalars(query)).all())

    institution_ids = await db.run(running)
    for institution_id in institution_ids:
        await finish(db, institution_id)
    return len(institution_ids)


async def summary(session: AsyncSession, institution_id: UUID) -> WindDownSummary:
    """What the wind-down has instructed and what became of it, by refund status."""
    wind_down = await session.get(WindDown, institution_id, populate_existing=True)
    if wind_down is None:
        raise WindDownNotFound(f"institution {institution_id} has not been wound down")
    rows = await session.execute(
        select(Refund.status, func.count(), func.coalesce(func.sum(Refund.amount_fen), 0))
        .where(Refund.institution_id == institution_id, Refund.wind_down_id == wind_down.id)
        .group_by(Refund.status)
    )
    by_status = {
        status: RefundTally(count=count, amount_fen=int(amount)) for status, count, amount in rows
    }
    total = await session.scalar(
        select(func.count())
        .select_from(Enrollment)
        .where(Enrollment.institution_id == institution_id)
    )

    def tally(*statuses: RefundStatus) -> RefundTally:
        found = [by_status[s] for s in statuses if s in by_status]
        return RefundTally(
            count=sum(t.count for t in found), amount_fen=sum(t.amount_fen for t in found)
        )

    instructed = RefundTally(
        count=sum(t.count for t in by_status.values()),
        amount_fen=sum(t.amount_fen for t in by_status.values()),
    )
    return WindDownSummary(
        id=wind_down.id,
        institution_id=institution_id,
        status=WindDownStatus(wind_down.status),
        reason=wind_down.reason,
        ordered_by=wind_down.ordered_by,
        ordered_at=wind_down.created_at,
        completed_at=wind_down.completed_at,
        enrollments_total=total or 0,
        enrollments_covered=wind_down.enrollments_covered,
        refunds=instructed.count,
        amount_fen=instructed.amount_fen,
        awaiting_dispatch=tally(RefundStatus.approved),
        sent=tally(RefundStatus.sent),
        settled=tally(RefundStatus.settled),
        failed=tally(RefundStatus.failed),
        returned=tally(RefundStatus.returned),
    )
