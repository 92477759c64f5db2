"""A break's life: opened by a statement (or by the day a statement did not come), closed by itself
when a later notification, statement or correction settles it, or by an operator or regulator with
a note. Who or what opened and closed each one is on the break; a break still open a day after it
was opened raises a YELLOW alert (DOMAIN.md), which closes with it.

Every way a break closes goes through `close`, so the alert it may have raised closes too.
"""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Alert, ReconciliationBreak
from app.models.alert import AlertKind
from app.models.reconciliation import BreakStatus, BreakType

MAX_NOTE_LENGTH = 500


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
    if closing:
        institution_ids = {each.institution_id for each in closing}
        await session.execute(
            update(Alert)
            .where(
                Alert.institution_id.in_(institution_ids),
                Alert.key.in_([alert_key(each.id) for each in closing]),
                Alert.closed_at.is_(None),
            )
            .values(closed_at=now)
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
