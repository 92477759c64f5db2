"""An institution's balance view: the figures of the minimum-balance rule, read from the ledger and
the lifecycle's tables.

One computation serves one institution and a regulator's page of hundreds, now and as of a past
moment: `figures_of` reads the inputs of every institution asked in a few set-based queries (the
ledger's totals by kind in one GROUP BY, the hold-back's receipts, the releasable money not yet
payable, the month's payouts), and the pure `Figures` of `app.balances.rules` does the arithmetic.
`figures` is that for one institution."""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from uuid import UUID

from dateutil.relativedelta import relativedelta
from sqlalchemy import BigInteger, ColumnElement, Select, bindparam, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.balances.rules import Figures, floor_fen, holdback_fen
from app.db.batch import among
from app.jurisdictions.profile import RuleProfile, profiles
from app.kit.clock import SHANGHAI, as_utc
from app.kit.ttl_cache import TtlCache
from app.kit.workdays import local_date
from app.ledger import service as ledger
from app.ledger.repository import accounts, entries, entries_postings_accounts, postings
from app.ledger.types import AccountKind
from app.models import Enrollment, Institution, Jurisdiction, Payout, ReconciliationRun
from app.models.payout import PayoutStatus
from app.models.reconciliation import RunStatus

# Payouts whose money came back to the escrow account do not count against the monthly cap.
MONEY_BACK = (PayoutStatus.failed, PayoutStatus.returned)
# Runs whose statement stands: a missing day reports no balance, a superseded one was corrected.
STANDING_RUNS = (RunStatus.clean, RunStatus.breaks)
# The kinds as plain strings, as `ledger.balances_by_kind_of` keys them.
PREPAID = AccountKind.prepaid.value
ESCROW_CASH = AccountKind.escrow_cash.value
RELEASABLE = AccountKind.releasable.value
PAYOUT_IN_TRANSIT = AccountKind.payout_in_transit.value
REFUND_IN_TRANSIT = AccountKind.refund_in_transit.value
SUSPENSE = AccountKind.suspense.value


async def profile_of(session: AsyncSession, institution: Institution) -> RuleProfile:
    return (await profiles_of(session, {institution.jurisdiction_code}))[
        institution.jurisdiction_code
    ]


# An institution's jurisdiction never changes once it is registered: remembered for an hour.
_jurisdiction_of: TtlCache[UUID, str] = TtlCache(ttl=3600)


async def profile_of_institution(
    session: AsyncSession | AsyncConnection, institution_id: UUID
) -> RuleProfile:
    """The rule profile of the institution `institution_id`, usually without a statement."""
    return (await profiles_of_institutions(session, [institution_id]))[institution_id]


async def profiles_of_institutions(
    session: AsyncSession | AsyncConnection, institution_ids: Collection[UUID]
) -> dict[UUID, RuleProfile]:
    """The rule profiles of these institutions (on a session, or on the connection of a group
    commit), usually without a statement: those not remembered are looked up in one."""
    codes = {i: code for i in institution_ids if (code := _jurisdiction_of.get(i)) is not None}
    if missing := [i for i in institution_ids if i not in codes]:
        rows = await session.execute(
            select(Institution.id, Institution.jurisdiction_code).where(Institution.id.in_(missing))
        )
        for institution_id, code in rows.all():
            codes[institution_id] = code
            _jurisdiction_of.put(institution_id, code, tag=institution_id)
    profiles = await profiles_of(session, set(codes.values()))
    return {institution_id: profiles[code] for institution_id, code in codes.items()}


async def profiles_of(
    session: AsyncSession | AsyncConnection, codes: set[str]
) -> dict[str, RuleProfile]:
    found = {code: profile for code in codes if (profile := profiles.get(code)) is not None}
    if missing := codes - found.keys():
        rows = await session.execute(
            select(Jurisdiction.code, Jurisdiction.profile).where(Jurisdiction.code.in_(missing))
        )
        for code, stored in rows.all():
            found[code] = profiles_read = RuleProfile(**stored)
            profiles.put(code, profiles_read, tag=code)
    return found


def floor_setting(institution: Institution, profile: RuleProfile) -> int:
    """The regulator's floor for the institution, else the jurisdiction profile's."""
    if institution.min_balance_floor_fen is not None:
        return institution.min_balance_floor_fen
    return profile.min_balance_floor_fen


async def holdback_of(
    session: AsyncSession, institution_id: UUID, profile: RuleProfile, as_of: datetime
) -> int:
    """H at `as_of`: 0 without a query when the profile holds nothing back."""
    return (await holdbacks_of(session, [(institution_id, profile)], as_of))[institution_id]


async def holdbacks_of(
    session: AsyncSession, institutions: Sequence[tuple[UUID, RuleProfile]], moment: datetime
) -> dict[UUID, int]:
    """H of each institution (with its profile) at `moment`: 0 without a query for one whose
    profile holds nothing back, one query per distinct hold-back setting for the others."""
    holdbacks = dict.fromkeys((institution_id for institution_id, _ in institutions), 0)
    by_holdback: dict[tuple[int, int], list[UUID]] = {}
    for institution_id, profile in institutions:
        if profile.holdback_pct:
            key = (profile.holdback_pct, profile.holdback_months)
            by_holdback.setdefault(key, []).append(institution_id)
    for (pct, months), group in by_holdback.items():
        holdbacks.update(await _holdbacks(session, group, pct, months, moment))
    return holdbacks


async def _holdbacks(
    session: AsyncSession, institution_ids: Sequence[UUID], pct: int, months: int, moment: datetime
) -> dict[UUID, int]:
    """H of each institution at `moment`, for one hold-back setting, in one query."""
    connection = await session.connection()
    # One row per institution and distinct amount: H rounds each receipt up on its own.
    receipts = await session.execute(
        select(Enrollment.institution_id, Enrollment.paid_fen, func.count())
        .where(
            among(connection, Enrollment.institution_id, institution_ids),
            Enrollment.paid_at > moment - relativedelta(months=months),
            Enrollment.paid_at <= moment,
        )
        .group_by(Enrollment.institution_id, Enrollment.paid_fen)
    )
    amounts: dict[UUID, list[tuple[int, int]]] = {}
    for institution_id, paid_fen, count in receipts.all():
        amounts.setdefault(institution_id, []).append((paid_fen, count))
    return {i: holdback_fen(pct, amounts.get(i, [])) for i in institution_ids}


def _local_midnight(day_offset: int, as_of: datetime) -> datetime:
    day = local_date(as_of) + timedelta(days=day_offset)
    return datetime.combine(day, time(0), SHANGHAI)


@dataclass(frozen=True, slots=True)
class BankReport:
    """The escrow balance the bank reported, and the moment it stood at (a statement's cut-off)."""

    balance_fen: int | None
    as_of: datetime | None


async def bank_reports(
    session: AsyncSession, institutions: Sequence[Institution], moment: datetime | None = None
) -> dict[UUID, BankReport]:
    """The bank's balance of each institution as it last reported it: now (the institution's row),
    or as of a past `moment`, the closing balance of the latest standing statement whose cut-off
    (the end of its day, Asia/Shanghai) is at or before `moment`."""
    reports = {
        institution.id: BankReport(institution.bank_balance_fen, institution.bank_balance_as_of)
        for institution in institutions
    }
    if moment is None:
        return reports
    earlier = [
        institution.id
        for institution in institutions
        if institution.bank_balance_as_of is None or as_utc(institution.bank_balance_as_of) > moment
    ]
    if not earlier:
        return reports
    latest = func.row_number().over(
        partition_by=ReconciliationRun.institution_id,
        order_by=(ReconciliationRun.statement_date.desc(), ReconciliationRun.created_at.desc()),
    )
    ranked = (
        select(
            ReconciliationRun.institution_id,
            ReconciliationRun.statement_date,
            ReconciliationRun.closing_fen,
            latest.label("latest"),
        )
        .where(
            among(await session.connection(), ReconciliationRun.institution_id, earlier),
            ReconciliationRun.status.in_(STANDING_RUNS),
            # cut_off(day) <= moment exactly when the day ended before moment's local day began.
            ReconciliationRun.statement_date < local_date(moment),
        )
        .subquery()
    )
    rows = await session.execute(
        select(ranked.c.institution_id, ranked.c.statement_date, ranked.c.closing_fen).where(
            ranked.c.latest == 1
        )
    )
    found = {
        institution_id: BankReport(
            closing_fen, datetime.combine(statement_date + timedelta(days=1), time(0), SHANGHAI)
        )
        for institution_id, statement_date, closing_fen in rows.all()
    }
    for institution_id in earlier:
        reports[institution_id] = found.get(institution_id, BankReport(None, None))
    return reports


async def figures_of(
    session: AsyncSession,
    institutions: Sequence[Institution],
    moment: datetime,
    *,
    replay: bool = False,
    profiles: dict[str, RuleProfile] | None = None,
    reports: dict[UUID, BankReport] | None = None,
) -> dict[UUID, Figures]:
    """The figures of each institution at `moment`. Without `replay`, `moment` is "now" (a job's
    or a test's now may differ from the clock's) and the ledger's maintained balances count; with
    it, everything is as it stood at `moment`: balances replayed from the journal, the bank's
    balance of the latest statement by then, receipts, releases and payouts made by then. `profiles`
    and `reports` may be given when the caller has them already."""
    if not institutions:
        return {}
    ids = [institution.id for institution in institutions]
    if profiles is None:
        profiles = await profiles_of(session, {i.jurisdiction_code for i in institutions})
    connection = await session.connection()
    until = moment if replay else None
    totals = await ledger.balances_by_kind_of(connection, ids, until)
    if reports is None:
        reports = await bank_reports(session, institutions, until)

    # Institutions sharing a profile share their moments: one query per distinct one, in practice
    # one per jurisdiction on the page.
    holdbacks = await holdbacks_of(
        session,
        [(institution.id, profiles[institution.jurisdiction_code]) for institution in institutions],
        moment,
    )
    by_lag: dict[int, list[UUID]] = {}
    for institution in institutions:
        profile = profiles[institution.jurisdiction_code]
        by_lag.setdefault(profile.release_lag_days, []).append(institution.id)

    # T+lag: lessons released from local midnight (lag - 1) days ago on may not leave yet.
    not_yet_payable: dict[UUID, int] = {}
    for lag, group in by_lag.items():
        not_yet_payable.update(
            await ledger.credited_to_kind_since(
                connection,
                group,
                AccountKind.releasable,
                "lesson_release",
                _local_midnight(1 - lag, moment),
                until,
            )
        )

    month_start = datetime.combine(local_date(moment).replace(day=1), time(0), SHANGHAI)
    month_query = (
        select(Payout.institution_id, func.sum(Payout.amount_fen))
        .where(
            among(connection, Payout.institution_id, ids),
            Payout.status.not_in(MONEY_BACK),
            Payout.created_at >= month_start,
        )
        .group_by(Payout.institution_id)
    )
    if replay:
        # A payout's status is read as it is now: one failed or returned since counts as such.
        month_query = month_query.where(Payout.created_at <= moment)
    month_payouts = {i: int(total) for i, total in (await session.execute(month_query)).all()}

    found = {}
    for institution in institutions:
        profile = profiles[institution.jurisdiction_code]
        kinds = totals[institution.id]
        unconsumed = kinds.get(PREPAID, 0)
        found[institution.id] = Figures(
            ledger_balance_fen=kinds.get(ESCROW_CASH, 0),
            bank_balance_fen=reports[institution.id].balance_fen,
            unconsumed_fen=unconsumed,
            holdback_fen=holdbacks.get(institution.id, 0),
            floor_fen=floor_fen(
                floor_setting(institution, profile),
                profile.min_balance_pct_of_unconsumed,
                unconsumed,
            ),
            releasable_fen=max(
                0, kinds.get(RELEASABLE, 0) - not_yet_payable.get(institution.id, 0)
            ),
            in_transit_fen=kinds.get(PAYOUT_IN_TRANSIT, 0) + kinds.get(REFUND_IN_TRANSIT, 0),
            suspense_fen=kinds.get(SUSPENSE, 0),
            month_payouts_fen=month_payouts.get(institution.id, 0),
            monthly_cap_multiple=profile.monthly_payout_cap_floor_multiple,
        )
    return found


async def figures(
    session: AsyncSession, institution: Institution, profile: RuleProfile, as_of: datetime
) -> Figures:
    """One institution's figures now (`as_of` being "now", as for `figures_of`), in one statement:
    the same inputs as `figures_of` reads for many (a property test holds them equal), each an
    aggregate of the institution's own rows."""
    parameters = _figures_parameters(institution.id, profile, as_of)
    row = (await session.execute(_FIGURES_NOW, parameters)).one()
    return _figures_from(row, institution, profile)


async def institution_and_figures(
    session: AsyncSession, institution_id: UUID, profile: RuleProfile, as_of: datetime
) -> tuple[Institution, Figures] | None:
    """The institution's row and its figures now, together in the one statement of `figures`
    (the balance view's single round trip); None when there is no such institution. `profile` is
    its jurisdiction's, known beforehand (`cached_jurisdiction`)."""
    parameters = _figures_parameters(institution_id, profile, as_of)
    row = (await session.execute(_INSTITUTION_AND_FIGURES_NOW, parameters)).one_or_none()
    if row is None:
        return None
    institution: Institution = row[0]
    return institution, _figures_from(row, institution, profile)


def cached_jurisdiction(institution_id: UUID) -> str | None:
    """The institution's jurisdiction when this process has seen it lately (it never changes)."""
    return _jurisdiction_of.get(institution_id)


def remember_jurisdiction(institution: Institution) -> None:
    _jurisdiction_of.put(institution.id, institution.jurisdiction_code, tag=institution.id)


def _figures_parameters(
    institution_id: UUID, profile: RuleProfile, as_of: datetime
) -> dict[str, Any]:
    return {
        "institution_id": institution_id,
        "holdback_pct": profile.holdback_pct,
        "receipts_after": as_of - relativedelta(months=profile.holdback_months),
        "moment": as_of,
        "not_payable_since": _local_midnight(1 - profile.release_lag_days, as_of),
        "month_start": datetime.combine(local_date(as_of).replace(day=1), time(0), SHANGHAI),
    }


def _figures_from(row: Any, institution: Institution, profile: RuleProfile) -> Figures:
    unconsumed = int(row.prepaid)
    return Figures(
        ledger_balance_fen=int(row.escrow_cash),
        bank_balance_fen=institution.bank_balance_fen,
        unconsumed_fen=unconsumed,
        holdback_fen=int(row.holdback),
        floor_fen=floor_fen(
            floor_setting(institution, profile), profile.min_balance_pct_of_unconsumed, unconsumed
        ),
        releasable_fen=max(0, int(row.releasable) - int(row.not_yet_payable)),
        in_transit_fen=int(row.in_transit),
        suspense_fen=int(row.suspense),
        month_payouts_fen=int(row.month_payouts),
        monthly_cap_multiple=profile.monthly_payout_cap_floor_multiple,
    )


def _one_of(column: Any, values: Sequence[str]) -> ColumnElement[bool]:
    """`column IN values` for a list fixed when the statement is built, said as equalities: an IN
    list is an expanding parameter, rendered into the statement's text again on every execution,
    where equalities leave the compiled statement whole in SQLAlchemy's cache."""
    return or_(*(column == value for value in values))


def _figures_now(with_institution: bool) -> Select[Any]:
    """The statement of `figures`, built once: each input an aggregate over one institution's rows
    (a single shard's), cross-joined into one row; `with_institution`, that row joined to the
    institution's own (no row when there is none). Hold-back rounds each receipt up on its own:
    ceil(pct * x / 100) is (pct * x + 99) / 100 in integers, x never negative."""
    institution = bindparam("institution_id", type_=accounts.c.institution_id.type)
    signed = accounts.c.balance_fen * accounts.c.normal

    def of_kind(*kinds: str) -> Any:
        return func.coalesce(func.sum(signed).filter(_one_of(accounts.c.kind, kinds)), 0)

    balances = (
        select(
            of_kind(ESCROW_CASH).label("escrow_cash"),
            of_kind(PREPAID).label("prepaid"),
            of_kind(RELEASABLE).label("releasable"),
            of_kind(PAYOUT_IN_TRANSIT, REFUND_IN_TRANSIT).label("in_transit"),
            of_kind(SUSPENSE).label("suspense"),
        )
        .where(accounts.c.institution_id == institution)
        .subquery("balances")
    )
    pct = bindparam("holdback_pct", type_=BigInteger)
    holdback = (
        select(
            func.coalesce(func.sum((Enrollment.paid_fen * pct + 99) // 100), 0).label("holdback")
        )
        .where(
            Enrollment.institution_id == institution,
            pct > 0,
            Enrollment.paid_at > bindparam("receipts_after", type_=Enrollment.paid_at.type),
            Enrollment.paid_at <= bindparam("moment", type_=Enrollment.paid_at.type),
        )
        .subquery("holdback")
    )
    not_yet = (
        select(func.coalesce(func.sum(-postings.c.amount_fen), 0).label("not_yet_payable"))
        .select_from(entries_postings_accounts())
        .where(
            entries.c.institution_id == institution,
            accounts.c.institution_id == institution,
            entries.c.kind == "lesson_release",
            entries.c.posted_at >= bindparam("not_payable_since", type_=entries.c.posted_at.type),
            accounts.c.kind == RELEASABLE,
            postings.c.amount_fen < 0,
        )
        .subquery("not_yet")
    )
    month = (
        select(func.coalesce(func.sum(Payout.amount_fen), 0).label("month_payouts"))
        .where(
            Payout.institution_id == institution,
            ~_one_of(Payout.status, MONEY_BACK),
            Payout.created_at >= bindparam("month_start", type_=Payout.created_at.type),
        )
        .subquery("month")
    )
    # Each is one row: joined on nothing, they make one row (said as joins, not a bare FROM list).
    joined = balances.join(holdback, true()).join(not_yet, true()).join(month, true())
    if not with_institution:
        return select(balances, holdback, not_yet, month).select_from(joined)
    return (
        select(Institution, balances, holdback, not_yet, month)
        .select_from(Institution.__table__.join(joined, true()))
        .where(Institution.id == institution)
    )


_FIGURES_NOW = _figures_now(with_institution=False)
_INSTITUTION_AND_FIGURES_NOW = _figures_now(with_institution=True)
