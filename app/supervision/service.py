"""The regulator's actions and reads across institutions: the floor, the summary, the alerts and the
ledger's integrity. Nothing here commits: the request owns the transaction."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.alerts import engine as alerts
from app.audit import service as audit
from app.auth.principal import Principal
from app.auth.scope import institution_scope
from app.balances.schemas import BalanceView
from app.institutions.repository import visible_institution
from app.kit.clock import utcnow
from app.kit.pagination import PageRequest
from app.ledger import service as ledger
from app.ledger.errors import LedgerNotFound
from app.ledger.types import AccountKind, VerifyReport
from app.models import Alert, Institution
from app.models.api_key import Role
from app.models.institution import AlertLevel
from app.supervision import repository
from app.supervision.schemas import (
    AlertOut,
    AlertStatus,
    CheckpointComparison,
    CheckpointStatus,
    LedgerVerification,
    LevelCounts,
    Summary,
)
from app.supervision.views import balance_views


def jurisdiction_of(caller: Principal, asked: str | None) -> str | None:
    """The jurisdiction a list covers: a regulator's own whatever it asks (another's would be out
    of its scope: it sees none of it), the operator's choice, or every one (None)."""
    if caller.role is Role.regulator:
        return caller.jurisdiction_code
    return asked


async def set_floor(
    session: AsyncSession, caller: Principal, institution_id: UUID, floor_fen: int | None
) -> BalanceView:
    """The institution's own minimum balance floor (None: the profile's again), its alerts
    re-evaluated in the same unit of work, the change audited; its balance view after."""
    institution = await visible_institution(session, caller, institution_id, lock=True)
    previous = institution.min_balance_floor_fen
    now = utcnow()
    institution.min_balance_floor_fen = floor_fen
    institution.updated_at = now
    await session.flush()
    await alerts.evaluate(session, institution.id, now, cause="floor set", actor=caller.identity)
    await audit.record(
        session,
        "floor.set",
        actor=caller,
        institution_id=institution.id,
        object_type="institution",
        object_id=institution.id,
        details={"min_balance_floor_fen": floor_fen, "previous_fen": previous},
    )
    await session.flush()
    await session.refresh(institution)  # the engine may have settled another level
    [view] = await balance_views(session, [institution])
    return view


async def summary(session: AsyncSession, jurisdiction_code: str | None) -> Summary:
    levels = dict.fromkeys(AlertLevel, 0)
    bank_fen = reported = 0
    for level, count, bank_sum, bank_count in await repository.levels_and_bank(
        session, jurisdiction_code
    ):
        levels[AlertLevel(level)] += count
        bank_fen += int(bank_sum)
        reported += bank_count
    students, enrollments = await repository.coverage(session, jurisdiction_code)
    totals = await repository.ledger_totals(session, jurisdiction_code)
    return Summary(
        jurisdiction_code=jurisdiction_code,
        institutions=sum(levels.values()),
        students_covered=students,
        enrollments_covered=enrollments,
        unconsumed_fen=totals.get(AccountKind.prepaid, 0),
        bank_balance_fen=bank_fen,
        institutions_reported_by_bank=reported,
        ledger_balance_fen=totals.get(AccountKind.escrow_cash, 0),
        levels=LevelCounts(**{level.value: count for level, count in levels.items()}),
    )


async def alerts_page(
    session: AsyncSession,
    caller: Principal,
    page: PageRequest,
    *,
    status: AlertStatus | None,
    level: str | None,
    kind: str | None,
    institution_id: UUID | None,
    since: datetime | None,
    until: datetime | None,
) -> tuple[list[AlertOut], str | None]:
    if institution_id is not None:  # another jurisdiction's institution: 404, as everywhere
        await visible_institution(session, caller, institution_id)
    rows, next_cursor = await repository.alerts_page(
        session,
        institution_scope(caller, Alert.institution_id),
        page,
        status=status,
        level=level,
        kind=kind,
        institution_id=institution_id,
        since=since,
        until=until,
    )
    items = [
        AlertOut(
            id=row.id,
            institution_id=row.institution_id,
            level=AlertLevel(row.level),
            kind=row.kind,
            reason=row.reason,
            figures=row.figures,
            opened_at=row.opened_at,
            closed_at=row.closed_at,
            status=AlertStatus.open if row.closed_at is None else AlertStatus.closed,
        )
        for row in rows
    ]
    return items, next_cursor


async def institutions_to_verify(
    session: AsyncSession, jurisdiction_code: str | None, after: UUID | None, limit: int
) -> Sequence[UUID]:
    query = select(Institution.id).order_by(Institution.id).limit(limit)
    if jurisdiction_code is not None:
        query = query.where(Institution.jurisdiction_code == jurisdiction_code)
    if after is not None:
        query = query.where(Institution.id > after)
    return (await session.scalars(query)).all()


async def verify(engine: AsyncEngine, institution_id: UUID) -> LedgerVerification:
    """One institution's ledger verified on a connection of its own (on PostgreSQL one snapshot,
    so writes going on meanwhile are not taken for tampering), its latest checkpoint compared."""
    async with engine.connect() as connection:
        try:
            report = await ledger.verify(connection, institution_id)
        except LedgerNotFound:  # onboarded without books: nothing written, nothing to alter
            report = VerifyReport(institution_id, True, 0, 0, 0)
        published = await ledger.checkpoints(connection, institution_id)
        last = max(published, key=lambda point: point.day) if published else None
        seqs = [report.verified_through_seq] + ([last.seq] if last else [])
        hashes = await ledger.entry_hashes(connection, institution_id, seqs)
    if last is None:
        compared = CheckpointComparison(status=CheckpointStatus.none)
    else:
        agrees = hashes.get(last.seq) == last.hash and report.verified_through_seq >= last.seq
        compared = CheckpointComparison(
            status=CheckpointStatus.matches if agrees else CheckpointStatus.disagrees,
            day=last.day,
            seq=last.seq,
            hash=last.hash,
        )
    return LedgerVerification(
        institution_id=institution_id,
        intact=report.intact,
        verified_through_seq=report.verified_through_seq,
        verified_through_hash=hashes.get(report.verified_through_seq),
        head_seq=report.head_seq,
        first_bad_seq=report.first_bad_seq,
        problem=report.problem,
        last_checkpoint=compared,
    )
