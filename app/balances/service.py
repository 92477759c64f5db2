"""An institution's balance view: the figures of the minimum-balance rule, read from the ledger and
the lifecycle's tables."""

from datetime import datetime, time, timedelta
from uuid import UUID

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.balances.rules import Figures, floor_fen, holdback_fen
from app.jurisdictions.profile import RuleProfile
from app.kit.clock import SHANGHAI
from app.kit.workdays import local_date
from app.ledger import service as ledger
from app.ledger.books import institution_books
from app.ledger.types import AccountKind
from app.models import Enrollment, Institution, Jurisdiction, Payout
from app.models.payout import PayoutStatus

# Payouts whose money came back to the escrow account do not count against the monthly cap.
MONEY_BACK = (PayoutStatus.failed, PayoutStatus.returned)


async def profile_of(session: AsyncSession, institution: Institution) -> RuleProfile:
    jurisdiction = await session.get_one(Jurisdiction, institution.jurisdiction_code)
    return RuleProfile(**jurisdiction.profile)


def floor_setting(institution: Institution, profile: RuleProfile) -> int:
    """The regulator's floor for the institution, else the jurisdiction profile's."""
    if institution.min_balance_floor_fen is not None:
        return institution.min_balance_floor_fen
    return profile.min_balance_floor_fen


async def holdback_of(
    session: AsyncSession, institution_id: UUID, profile: RuleProfile, as_of: datetime
) -> int:
    """H at `as_of`: 0 without a query when the profile holds nothing back."""
    if not profile.holdback_pct:
        return 0
    since = as_of - relativedelta(months=profile.holdback_months)
    # One row per distinct amount: H rounds each receipt up on its own (holdback_fen).
    receipts = await session.execute(
        select(Enrollment.paid_fen, func.count())
        .where(
            Enrollment.institution_id == institution_id,
            Enrollment.paid_at > since,
            Enrollment.paid_at <= as_of,
        )
        .group_by(Enrollment.paid_fen)
    )
    return holdback_fen(profile.holdback_pct, receipts.all())


def _local_midnight(day_offset: int, as_of: datetime) -> datetime:
    day = local_date(as_of) + timedelta(days=day_offset)
    return datetime.combine(day, time(0), SHANGHAI)


async def figures(
    session: AsyncSession, institution: Institution, profile: RuleProfile, as_of: datetime
) -> Figures:
    connection = await session.connection()
    totals = await ledger.balances_by_kind(connection, institution.id)
    books = await institution_books(connection, institution.id)
    unconsumed = totals[AccountKind.prepaid]

    holdback = await holdback_of(session, institution.id, profile, as_of)

    # T+lag: lessons released from local midnight (lag - 1) days ago on may not leave yet.
    not_yet_payable = await ledger.credited_since(
        connection,
        institution.id,
        books.releasable.id,
        "lesson_release",
        _local_midnight(1 - profile.release_lag_days, as_of),
    )
    month_start = datetime.combine(local_date(as_of).replace(day=1), time(0), SHANGHAI)
    month_payouts = (
        await session.scalar(
            select(func.coalesce(func.sum(Payout.amount_fen), 0)).where(
                Payout.institution_id == institution.id,
                Payout.status.not_in(MONEY_BACK),
                Payout.created_at >= month_start,
            )
        )
        or 0
    )
    return Figures(
        ledger_balance_fen=totals[AccountKind.escrow_cash],
        bank_balance_fen=institution.bank_balance_fen,
        unconsumed_fen=unconsumed,
        holdback_fen=holdback,
        floor_fen=floor_fen(
            floor_setting(institution, profile), profile.min_balance_pct_of_unconsumed, unconsumed
        ),
        releasable_fen=max(0, totals[AccountKind.releasable] - not_yet_payable),
        in_transit_fen=totals[AccountKind.payout_in_transit]
        + totals[AccountKind.refund_in_transit],
        suspense_fen=totals[AccountKind.suspense],
        month_payouts_fen=int(month_payouts),
        monthly_cap_multiple=profile.monthly_payout_cap_floor_multiple,
    )
