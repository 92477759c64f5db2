"""The supervision queries across a jurisdiction's institutions: the summary's aggregates and the
alerts list. Each is one set-based statement."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, case, distinct, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.pagination import PageRequest, paginate
from app.ledger.types import AccountKind
from app.models import Alert, Enrollment, Institution, LedgerAccount
from app.models.enrollment import EnrollmentStatus


def _of(column: Any, jurisdiction_code: str | None) -> ColumnElement[bool]:
    """`column` (an institution id) of the jurisdiction's institutions; any when None."""
    if jurisdiction_code is None:
        return true()
    return column.in_(
        select(Institution.id).where(Institution.jurisdiction_code == jurisdiction_code)
    )


async def levels_and_bank(
    session: AsyncSession, jurisdiction_code: str | None
) -> list[tuple[str, int, int, int]]:
    """(alert level, institutions, bank balances summed, institutions with one) per level."""
    query = select(
        Institution.alert_level,
        func.count(),
        func.coalesce(func.sum(Institution.bank_balance_fen), 0),
        func.count(Institution.bank_balance_fen),
    ).group_by(Institution.alert_level)
    if jurisdiction_code is not None:
        query = query.where(Institution.jurisdiction_code == jurisdiction_code)
    return [tuple(row) for row in (await session.execute(query)).all()]  # type: ignore[misc]


async def coverage(session: AsyncSession, jurisdiction_code: str | None) -> tuple[int, int]:
    """(distinct students with unconsumed money, active enrollments with unconsumed money)."""
    unconsumed = Enrollment.paid_fen - Enrollment.confirmed_fen - Enrollment.refunded_fen
    query = select(
        func.count(distinct(Enrollment.student_id_hash)),
        func.coalesce(
            func.sum(case((Enrollment.status == EnrollmentStatus.active, 1), else_=0)), 0
        ),
    ).where(unconsumed > 0, _of(Enrollment.institution_id, jurisdiction_code))
    row = (await session.execute(query)).one()
    return int(row[0]), int(row[1])


async def ledger_totals(
    session: AsyncSession, jurisdiction_code: str | None
) -> dict[AccountKind, int]:
    """The escrow cash and the prepaid liabilities of the institutions, summed by kind."""
    query = (
        select(LedgerAccount.kind, func.sum(LedgerAccount.balance_fen * LedgerAccount.normal))
        .where(
            LedgerAccount.kind.in_((AccountKind.escrow_cash, AccountKind.prepaid)),
            _of(LedgerAccount.institution_id, jurisdiction_code),
        )
        .group_by(LedgerAccount.kind)
    )
    rows = await session.execute(query)
    return {AccountKind(kind): int(total) for kind, total in rows.all()}


async def alerts_page(
    session: AsyncSession,
    scope: Any,
    page: PageRequest,
    *,
    status: str | None,
    level: str | None,
    kind: str | None,
    institution_id: UUID | None,
    since: datetime | None,
    until: datetime | None,
) -> tuple[Sequence[Alert], str | None]:
    """Alerts oldest first (by the moment they opened), within `scope` (a condition on
    `Alert.institution_id`) and the filters given."""
    query = select(Alert).where(scope)
    if status == "open":
        query = query.where(Alert.closed_at.is_(None))
    elif status == "closed":
        query = query.where(Alert.closed_at.is_not(None))
    if level is not None:
        query = query.where(Alert.level == level)
    if kind is not None:
        query = query.where(Alert.kind == kind)
    if institution_id is not None:
        query = query.where(Alert.institution_id == institution_id)
    if since is not None:
        query = query.where(Alert.opened_at >= since)
    if until is not None:
        query = query.where(Alert.opened_at < until)
    return await paginate(session, query, page, Alert.opened_at, Alert.id)
