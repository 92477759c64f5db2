"""A break's life: opened by a statement (or by the day a statement did not come), closed by itself
when a later notification, statement or correction settles it, or by an operator or regulator with
a note. Who or what opened and closed each one is on the break; a break still open a day after it
was opened raises a YELLOW alert (DOMAIN.md), which closes with it.

Every way a break closes goes through `close`, so the alert it may have raised closes too.
"""

from collections.abc import Sequence
from datetime import date, datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import levels
from app.alerts.service import close_alerts
from app.auth.principal import Principal
from app.auth.scope import scoped, scoped_page
from app.kit.errors import Conflict, NotFound
from app.kit.pagination import PageRequest
from app.models import ReconciliationBreak, ReconciliationRun
from app.models.alert import AlertKind
from app.models.reconciliation import BreakStatus, BreakType, RunStatus

MAX_NOTE_LENGTH = 500
# Who opens the breaks a statement shows, and closes those a later statement settles (a person
# closes them by name).
BY_STATEMENT = "statement"


class BreakNotFound(NotFound):
    code = "break_not_found"
    title = "Reconciliation break not found"


class BreakClosed(Conflict):
    code = "break_closed"
    title = "The break is closed already"


def alert_key(break_id: UUID) -> str:
    """The key of the YELLOW alert a break raises once it is a day old (as `raise_alert` keys)."""
    return f"{AlertKind.reconciliation_break}:{break_id}"


async def close(
    session: AsyncSession,
    breaks: Sequence[ReconciliationBreak],
    *,
    by: str,
    note: str,
    now: datetime,
) -> int:
    """Close the breaks still open (rows the caller read in this unit), with who or what closed
    them and why, and the alerts they raised; returns how many it closed."""
    closing = [each for each in breaks if each.status == BreakStatus.open]
    for each in closing:
        each.status = BreakStatus.closed
        each.closed_at = now
        each.closed_by = by[:100]
        each.close_note = note[:MAX_NOTE_LENGTH]
    for institution_id in sorted({each.institution_id for each in closing}):
        await close_alerts(
            session,
            institution_id,
            [alert_key(each.id) for each in closing if each.institution_id == institution_id],
            now=now,
            reason=f"reconciliation break closed by {by}: {note}",
            actor=by,
        )
    return len(closing)


async def open_breaks(
    session: AsyncSession,
    institution_id: UUID,
    *,
    types: Sequence[BreakType],
    bank_reference: str | None = None,
    movement_id: str | None = None,
    run_ids: Sequence[UUID] | None = None,
) -> list[ReconciliationBreak]:
    """The institution's open breaks of these types, narrowed to one bank serial, one ledger
    movement or some runs, locked for closing."""
    query = select(ReconciliationBreak).where(
        ReconciliationBreak.institution_id == institution_id,
        ReconciliationBreak.status == BreakStatus.open,
        ReconciliationBreak.type.in_(list(types)),
    )
    if bank_reference is not None:
        query = query.where(ReconciliationBreak.bank_reference == bank_reference)
    if movement_id is not None:
        query = query.where(ReconciliationBreak.movement_id == movement_id)
    if run_ids is not None:
        query = query.where(ReconciliationBreak.run_id.in_(list(run_ids)))
    return list(
        (await session.scalars(query.order_by(ReconciliationBreak.id).with_for_update())).all()
    )


async def close_by_hand(
    session: AsyncSession, caller: Principal, break_id: UUID, note: str, now: datetime
) -> ReconciliationBreak:
    """Close one break the caller sees (the operator, or the regulator of its institution), in the
    caller's name (`Principal.identity`: role and key id) and with its note. A break out of the
    caller's scope is not found; a closed one stays as it was closed (BreakClosed)."""
    found = await scoped(session, caller, ReconciliationBreak, break_id)
    if found is None:
        raise BreakNotFound(f"no reconciliation break {break_id}")
    # The institution's row before the break's, as a statement takes them: closing may move the
    # institution's level.
    await levels.lock(session, found.institution_id)
    found = await scoped(session, caller, ReconciliationBreak, break_id, lock=True)
    assert found is not None  # seen a moment ago, and breaks are never deleted
    if found.status != BreakStatus.open:
        raise BreakClosed(
            f"break {break_id} was closed at {found.closed_at} by {found.closed_by}",
            closed_by=found.closed_by,
        )
    await close(session, [found], by=caller.identity, note=note, now=now)
    return found


async def page(
    session: AsyncSession,
    caller: Principal,
    page_request: PageRequest,
    *,
    institution_id: UUID | None = None,
    status: BreakStatus | None = None,
    break_type: BreakType | None = None,
) -> tuple[Sequence[ReconciliationBreak], str | None]:
    """The breaks the caller sees across runs, oldest opened first, filtered by institution,
    status and type."""
    return await scoped_page(
        session,
        caller,
        ReconciliationBreak,
        page_request,
        institution_id=institution_id,
        oldest_by="opened_at",
        status=status,
        type=break_type,
    )


async def statement_arrived(
    session: AsyncSession, institution_id: UUID, day: date, run_id: UUID, now: datetime
) -> None:
    """The statement of `day` came after all (its run is `run_id`): close the day's
    statement_missing breaks, which the watch job opened when it did not come in time."""
    missing = await session.scalars(
        select(ReconciliationBreak)
        .join(
            ReconciliationRun,
            (ReconciliationRun.institution_id == ReconciliationBreak.institution_id)
            & (ReconciliationRun.id == ReconciliationBreak.run_id),
        )
        .where(
            ReconciliationBreak.institution_id == institution_id,
            ReconciliationBreak.type == BreakType.statement_missing,
            ReconciliationBreak.status == BreakStatus.open,
            ReconciliationRun.statement_date == day,
            ReconciliationRun.status == RunStatus.missing,
        )
        .order_by(ReconciliationBreak.id)
        .with_for_update(of=ReconciliationBreak)
    )
    await close(
        session,
        list(missing),
        by=BY_STATEMENT,
        note=f"the statement of {day} came late: run {run_id}",
        now=now,
    )
