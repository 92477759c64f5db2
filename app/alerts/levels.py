"""An institution's alert level and its history: which alerts bear on the level, how the level is
settled, and the record of every change (`alert_level_changes`).

Only the kinds of DOMAIN.md's table move the level (LEVEL_BEARING). The others are informational:
the regulator sees them, but they stop nothing, since they describe a bank's message (suspense, a
failed or returned instruction, a result for an unknown or already-final instruction, a message
from the wrong bank) rather than the institution's money being at risk; where they are (money out
without an instruction) the bank path raises `unauthorized_debit` as well.

Locking: the level is a column of the institution's row, so settling it takes that row's lock.
Every path that can move money takes it before the institution's ledger (the lock order of
payouts); `lock` is the one statement that does, and it is a no-op when the row is held already.
"""

from datetime import datetime
from typing import Literal, overload
from uuid import UUID, uuid4

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts.rules import settled_level
from app.jurisdictions.profile import RuleProfile
from app.models import Alert, AlertLevelChange, Institution, Jurisdiction
from app.models.alert import AlertKind
from app.models.institution import AlertLevel, InstitutionStatus, ListStatus

LEVEL_BEARING = frozenset(
    {
        AlertKind.floor_breach,
        AlertKind.shortfall,
        AlertKind.large_outflow,
        AlertKind.daily_outflow,
        AlertKind.reconciliation_break,
        AlertKind.consumption_spike,
        AlertKind.unauthorized_debit,
        AlertKind.topup_overdue,
        AlertKind.complaint_burst,
    }
)
MAX_CAUSE_LENGTH = 500


@overload
async def lock(
    session: AsyncSession, institution_id: UUID, *, skip_locked: Literal[False] = False
) -> tuple[Institution, RuleProfile]: ...


@overload
async def lock(
    session: AsyncSession, institution_id: UUID, *, skip_locked: Literal[True]
) -> tuple[Institution, RuleProfile] | None: ...


async def lock(
    session: AsyncSession, institution_id: UUID, *, skip_locked: bool = False
) -> tuple[Institution, RuleProfile] | None:
    """Lock the institution's row (held to the end of the transaction) and read its rule profile,
    in one statement. `skip_locked`: None when another transaction holds it."""
    row = (
        await session.execute(
            select(Institution, Jurisdiction.profile)
            .join(Jurisdiction, Jurisdiction.code == Institution.jurisdiction_code)
            .where(Institution.id == institution_id)
            .with_for_update(of=Institution, skip_locked=skip_locked)
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        if skip_locked:
            return None
        raise LookupError(f"no institution {institution_id}")
    return row[0], RuleProfile(**row[1])


def is_held(institution: Institution) -> bool:
    """Frozen, revoked or blacklisted: FROZEN whatever the alerts say, until a regulator lifts it."""
    return institution.status != InstitutionStatus.active or (
        institution.list_status == ListStatus.black
    )


async def open_levels(session: AsyncSession, institution_id: UUID) -> list[str]:
    """The levels of the institution's open alerts that bear on its level."""
    rows = await session.scalars(
        select(Alert.level)
        .where(
            Alert.institution_id == institution_id,
            Alert.closed_at.is_(None),
            Alert.kind.in_(sorted(LEVEL_BEARING)),
        )
        .distinct()
    )
    return list(rows)


async def settle(
    session: AsyncSession, institution: Institution, *, now: datetime, cause: str, actor: str
) -> AlertLevel:
    """Set the level of the institution (whose row the caller has locked) from its standing and
    open alerts; a change is recorded with its cause and who or what caused it."""
    level = settled_level(
        held=is_held(institution), open_levels=await open_levels(session, institution.id)
    )
    if level != institution.alert_level:
        session.add(
            AlertLevelChange(
                institution_id=institution.id,
                id=uuid4(),
                from_level=institution.alert_level,
                to_level=level,
                cause=cause[:MAX_CAUSE_LENGTH],
                actor=actor[:100],
                changed_at=now,
            )
        )
        institution.alert_level = level
        institution.updated_at = now
        await session.flush()
    return level


async def settle_by_id(
    session: AsyncSession, institution_id: UUID, *, now: datetime, cause: str, actor: str
) -> AlertLevel:
    institution, _ = await lock(session, institution_id)
    return await settle(session, institution, now=now, cause=cause, actor=actor)


async def level_as_of(session: AsyncSession, institution_id: UUID, moment: datetime) -> AlertLevel:
    """The level at `moment`: the last change at or before it, else GREEN (every institution
    starts GREEN and every change since is recorded)."""
    level = await session.scalar(
        select(AlertLevelChange.to_level)
        .where(
            AlertLevelChange.institution_id == institution_id,
            AlertLevelChange.changed_at <= moment,
        )
        .order_by(AlertLevelChange.changed_at.desc(), AlertLevelChange.id.desc())
        .limit(1)
    )
    return AlertLevel(level) if level is not None else AlertLevel.green
