"""The alert engine (issue 11 item 1): every trigger of DOMAIN.md, the institution's level as the
worst open alert, every level change recorded (docs/supervision.md, "Alert engine").

| trigger | level | opens when | closes |
|---|---|---|---|
| floor_breach | YELLOW | U <= B < R | B >= R again, or B < U (shortfall instead) |
| shortfall | RED | B < U | B >= U again |
| large_outflow | YELLOW | one payout or refund instructed above large_outflow_fen | the day is over |
| daily_outflow | YELLOW | the day's payouts and refunds above daily_outflow_pct of its opening B | the day is over |
| reconciliation_break | YELLOW | a break open more than a day | the break closes (breaks.close) |
| consumption_spike | YELLOW | the day's recorded lessons above factor x the trailing mean | the day is over |
| unauthorized_debit | RED | the bank paths (inbox, reconciliation) | by hand |
| topup_overdue | RED | a YELLOW alert open topup_deadline_workdays working days | that alert closes |

Where each is evaluated: the figures (floor_breach, shortfall) in the transaction of every money
movement through the bank (inbox credits, instruction outcomes, statements) and of every payout;
everything but stale breaks before each payout decides (`evaluate_locked`); everything by the
`evaluate_alerts` job. Refunds count as outflows (money leaving is money leaving, and a wave of
refunds is what a run on an institution looks like) but are never blocked.

Every evaluation runs under the institution's row lock (`levels.lock`), so two at once (the job on
two processes, a payout and a bank message) never open one alert twice.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import levels, repository
from app.alerts.rules import (
    SPIKE_WINDOW_DAYS,
    figure_trigger,
    is_spike,
    outflow_share_exceeded,
)
from app.alerts.service import close_alerts, full_key, raise_alert
from app.balances.rules import balance_of, floor_fen
from app.balances.service import floor_setting, holdback_of, holdbacks_of
from app.db.unit import Database
from app.jurisdictions.profile import RuleProfile
from app.kit.clock import SHANGHAI
from app.kit.workdays import add_workdays, local_date
from app.ledger import service as ledger
from app.ledger.books import institution_books
from app.ledger.types import AccountKind
from app.models import Alert, Institution, ReconciliationBreak, ReconciliationRun
from app.models.alert import AlertKind
from app.models.institution import AlertLevel
from app.models.reconciliation import BreakStatus
from app.reconciliation.breaks import alert_key as break_alert_key

JOB_ACTOR = "job:evaluate_alerts"
FIGURE_KINDS = (AlertKind.floor_breach, AlertKind.shortfall)
# Alerts about one local day, closed by the first evaluation after it.
DAY_KINDS = frozenset(
    {AlertKind.large_outflow, AlertKind.daily_outflow, AlertKind.consumption_spike}
)
# A break open this long raises its YELLOW alert.
STALE_AFTER = timedelta(days=1)
BATCH = 500


@dataclass(frozen=True, slots=True)
class Position:
    """B, U and R, the figures of the balance triggers."""

    ledger_balance_fen: int
    bank_balance_fen: int | None
    unconsumed_fen: int
    holdback_fen: int
    floor_fen: int

    @property
    def balance_fen(self) -> int:
        return balance_of(self.ledger_balance_fen, self.bank_balance_fen)

    @property
    def required_fen(self) -> int:
        return self.unconsumed_fen + self.holdback_fen + self.floor_fen

    def named(self) -> dict[str, Any]:
        return {
            "balance_fen": self.balance_fen,
            "ledger_balance_fen": self.ledger_balance_fen,
            "bank_balance_fen": self.bank_balance_fen,
            "unconsumed_fen": self.unconsumed_fen,
            "holdback_fen": self.holdback_fen,
            "floor_fen": self.floor_fen,
            "required_fen": self.required_fen,
        }


async def position(
    session: AsyncSession, institution: Institution, profile: RuleProfile, as_of: datetime
) -> Position:
    """One statement (the ledger's totals by kind), two with a hold-back."""
    totals = await ledger.balances_by_kind(await session.connection(), institution.id)
    return _position(
        institution,
        profile,
        totals[AccountKind.escrow_cash],
        totals[AccountKind.prepaid],
        await holdback_of(session, institution.id, profile, as_of),
    )


def _position(
    institution: Institution, profile: RuleProfile, ledger_fen: int, unconsumed_fen: int, h: int
) -> Position:
    return Position(
        ledger_balance_fen=ledger_fen,
        bank_balance_fen=institution.bank_balance_fen,
        unconsumed_fen=unconsumed_fen,
        holdback_fen=h,
        floor_fen=floor_fen(
            floor_setting(institution, profile),
            profile.min_balance_pct_of_unconsumed,
            unconsumed_fen,
        ),
    )


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), SHANGHAI)
    return start, start + timedelta(days=1)


class _Evaluation:
    """One evaluation of one locked institution: what is open, what it opens and closes."""

    def __init__(
        self,
        session: AsyncSession,
        institution: Institution,
        profile: RuleProfile,
        as_of: datetime,
        actor: str,
        open_alerts: list[Alert],
    ) -> None:
        self.session = session
        self.institution = institution
        self.profile = profile
        self.as_of = as_of
        self.actor = actor
        self.open = {alert.key: alert for alert in open_alerts}
        self.events: list[str] = []  # what opened and closed, for the level change's cause

    def open_of(self, *kinds: AlertKind) -> list[Alert]:
        return [alert for alert in self.open.values() if alert.kind in kinds]

    async def raise_(
        self,
        kind: AlertKind,
        level: AlertLevel,
        key: str,
        reason: str,
        figures: dict[str, Any],
    ) -> None:
        if full_key(kind, key) in self.open:
            return
        if await raise_alert(
            self.session,
            self.institution.id,
            kind,
            level,
            key,
            reason,
            figures=figures,
            now=self.as_of,
            actor=self.actor,
            settle=False,
        ):
            self.events.append(f"{kind} opened: {reason}")

    @property
    def changed(self) -> bool:
        return bool(self.events)

    async def close(self, alerts: list[Alert], reason: str) -> None:
        if not alerts:
            return
        await close_alerts(
            self.session,
            self.institution.id,
            [alert.key for alert in alerts],
            now=self.as_of,
            reason=reason,
            actor=self.actor,
            settle=False,
        )
        for alert in alerts:
            self.open.pop(alert.key, None)
        kinds = ", ".join(sorted({alert.kind for alert in alerts}))
        self.events.append(f"{kinds} closed: {reason}")

    # --- the triggers ----------------------------------------------------------------------------

    async def figures(self, at: Position) -> None:
        trigger = figure_trigger(at.balance_fen, at.unconsumed_fen, at.required_fen)
        await self.close(
            [alert for alert in self.open_of(*FIGURE_KINDS) if alert.kind != trigger],
            f"B = {at.balance_fen} fen, U = {at.unconsumed_fen} fen, R = {at.required_fen} fen",
        )
        if trigger is None or self.open_of(trigger):
            return
        if trigger is AlertKind.shortfall:
            level = AlertLevel.red
            reason = (
                f"shortfall: the balance B = {at.balance_fen} fen is below what students are owed, "
                f"U = {at.unconsumed_fen} fen ({at.unconsumed_fen - at.balance_fen} fen short)"
            )
        else:
            level = AlertLevel.yellow
            reason = (
                f"floor breach: the balance B = {at.balance_fen} fen is below the required balance "
                f"R = U + H + F = {at.unconsumed_fen} + {at.holdback_fen} + {at.floor_fen} = "
                f"{at.required_fen} fen; top up within {self.profile.topup_deadline_workdays} "
                "working days"
            )
        await self.raise_(trigger, level, self.as_of.isoformat(), reason, at.named())

    async def outflows(self) -> None:
        day = local_date(self.as_of)
        start, end = _day_bounds(day)
        found = await repository.outflows_between(self.session, self.institution.id, start, end)
        large = self.profile.large_outflow_fen
        for instruction_id, kind, amount in found:
            if amount > large:
                await self.raise_(
                    AlertKind.large_outflow,
                    AlertLevel.yellow,
                    instruction_id,
                    f"a {kind} of {amount} fen (instruction {instruction_id}) is above the large "
                    f"outflow threshold of {large} fen",
                    {
                        "day": day.isoformat(),
                        "instruction_id": instruction_id,
                        "kind": kind,
                        "amount_fen": amount,
                        "large_outflow_fen": large,
                    },
                )
        total = sum(amount for _, _, amount in found)
        key = day.isoformat()
        if total == 0 or full_key(AlertKind.daily_outflow, key) in self.open:
            return
        connection = await self.session.connection()
        escrow = (await institution_books(connection, self.institution.id)).escrow_cash
        totals = await ledger.balances_by_kind(connection, self.institution.id)
        opening = totals[AccountKind.escrow_cash] - escrow.normal * (
            await repository.posted_since(self.session, self.institution.id, escrow.id, start)
        )
        pct = self.profile.daily_outflow_pct
        if outflow_share_exceeded(total, opening, pct):
            await self.raise_(
                AlertKind.daily_outflow,
                AlertLevel.yellow,
                key,
                f"{total} fen instructed out on {day}, above {pct}% of the day's opening escrow "
                f"balance of {opening} fen",
                {
                    "day": key,
                    "outflows_fen": total,
                    "opening_balance_fen": opening,
                    "daily_outflow_pct": pct,
                },
            )

    async def spike(self) -> None:
        day = local_date(self.as_of)
        history_days = min(SPIKE_WINDOW_DAYS, (day - local_date(self.institution.created_at)).days)
        key = day.isoformat()
        if history_days <= 0 or full_key(AlertKind.consumption_spike, key) in self.open:
            return
        start, end = _day_bounds(day)
        trailing, today = await repository.lessons_recorded(
            self.session, self.institution.id, start - timedelta(days=history_days), start, end
        )
        factor = self.profile.consumption_spike_factor
        if is_spike(today, trailing, history_days, factor):
            await self.raise_(
                AlertKind.consumption_spike,
                AlertLevel.yellow,
                key,
                f"突击消课: {today} lessons recorded on {day}, above {factor} times the daily mean "
                f"of the {history_days} days before ({trailing} lessons)",
                {
                    "day": key,
                    "lessons": today,
                    "trailing_lessons": trailing,
                    "trailing_days": history_days,
                    "consumption_spike_factor": factor,
                },
            )

    async def day_over(self) -> None:
        today = local_date(self.as_of)
        await self.close(
            [alert for alert in self.open_of(*DAY_KINDS) if _alert_day(alert) < today],
            "the day it was about is over",
        )

    async def topup(self) -> None:
        """A YELLOW alert still open topup_deadline_workdays working days after the day it opened
        raises topup_overdue (RED), which closes when that alert closes."""
        overdue = self.open_of(AlertKind.topup_overdue)
        await self.close(
            [
                alert
                for alert in overdue
                if (alert.figures or {}).get("source_key") not in self.open
            ],
            "the YELLOW alert it was about has closed",
        )
        days = self.profile.topup_deadline_workdays
        today = local_date(self.as_of)
        for alert in list(self.open.values()):
            if alert.level != AlertLevel.yellow or alert.kind not in levels.LEVEL_BEARING:
                continue
            deadline = add_workdays(local_date(alert.opened_at), days)
            if today <= deadline:
                continue
            await self.raise_(
                AlertKind.topup_overdue,
                AlertLevel.red,
                str(alert.id),
                f"{alert.kind} open since {local_date(alert.opened_at)} was not cured within "
                f"{days} working days (by {deadline})",
                {
                    "source_key": alert.key,
                    "source_kind": alert.kind,
                    "opened_on": local_date(alert.opened_at).isoformat(),
                    "deadline": deadline.isoformat(),
                    "topup_deadline_workdays": days,
                },
            )


def _alert_day(alert: Alert) -> date:
    day = (alert.figures or {}).get("day")
    return date.fromisoformat(day) if day else local_date(alert.opened_at)


# --- entry points ---------------------------------------------------------------------------------


async def evaluate_locked(
    session: AsyncSession,
    institution: Institution,
    profile: RuleProfile,
    as_of: datetime,
    *,
    cause: str,
    actor: str,
) -> AlertLevel:
    """Every per-institution trigger of an institution whose row the caller has locked (the
    figures, the day's outflows and spike, the day-over closures, stale breaks, the top-up
    deadline), then its level settled. Returns the level."""
    await raise_stale_breaks(session, as_of, None, institution_id=institution.id, actor=actor)
    run = _Evaluation(
        session,
        institution,
        profile,
        as_of,
        actor,
        await repository.open_alerts(session, institution.id),
    )
    await run.day_over()
    await run.figures(await position(session, institution, profile, as_of))
    await run.outflows()
    await run.spike()
    await run.topup()
    return await levels.settle(
        session,
        institution,
        now=as_of,
        cause=cause if not run.changed else _cause(run, cause),
        actor=actor,
    )


def _cause(run: _Evaluation, cause: str) -> str:
    return "; ".join(run.events) + f" ({cause})"


async def evaluate_outflows(
    session: AsyncSession,
    institution: Institution,
    profile: RuleProfile,
    as_of: datetime,
    *,
    cause: str,
    actor: str,
) -> None:
    """The day's outflow triggers after an outflow was instructed (the institution's row locked)."""
    run = _Evaluation(
        session,
        institution,
        profile,
        as_of,
        actor,
        await repository.open_alerts(session, institution.id),
    )
    await run.outflows()
    if run.changed:
        await levels.settle(session, institution, now=as_of, cause=_cause(run, cause), actor=actor)


async def evaluate_money(
    session: AsyncSession, institution_id: UUID, as_of: datetime, *, cause: str, actor: str
) -> None:
    """The balance triggers after money moved through the bank (a credit, an instruction's
    outcome, a statement's balance), in that transaction. Cheap on the common path: the row lock
    with the profile, and the ledger's totals; the open alerts are read only when a trigger fires
    or the level is not GREEN (at GREEN nothing that bears on the level is open)."""
    await evaluate_money_locked(
        session,
        [await levels.lock(session, institution_id)],
        as_of,
        {institution_id: (cause, actor)},
    )


async def evaluate_money_locked(
    session: AsyncSession,
    locked: Sequence[tuple[Institution, RuleProfile]],
    as_of: datetime,
    moved: Mapping[UUID, tuple[str, str]],
) -> None:
    """`evaluate_money` of institutions whose rows the caller locked (with their profiles), after
    money moved in each (`moved`: what moved it and who, as `cause` and `actor`; a group of bank
    credits): their ledger totals in one read for them all, and their hold-backs in one per
    distinct setting."""
    ids = [institution.id for institution, _ in locked]
    totals = await ledger.balances_by_kind_of(await session.connection(), ids)
    holdbacks = await holdbacks_of(
        session, [(institution.id, profile) for institution, profile in locked], as_of
    )
    for institution, profile in locked:
        of = totals[institution.id]
        at = _position(
            institution,
            profile,
            of.get(AccountKind.escrow_cash.value, 0),
            of.get(AccountKind.prepaid.value, 0),
            holdbacks[institution.id],
        )
        trigger = figure_trigger(at.balance_fen, at.unconsumed_fen, at.required_fen)
        if trigger is None and institution.alert_level == AlertLevel.green:
            continue
        run = _Evaluation(
            session,
            institution,
            profile,
            as_of,
            moved[institution.id][1],
            await repository.open_alerts(session, institution.id),
        )
        await run.figures(at)
        if run.changed:
            cause, actor = moved[institution.id]
            await run.topup()
            await levels.settle(
                session, institution, now=as_of, cause=_cause(run, cause), actor=actor
            )


async def evaluate(
    session: AsyncSession, institution_id: UUID, as_of: datetime, *, cause: str, actor: str
) -> None:
    """Re-evaluate the institution's alerts at `as_of` and settle its level, in the caller's unit
    of work; `cause` and `actor` are recorded with any level change (e.g. cause "floor set", actor
    "regulator:<key id>"). Takes the institution's row lock: call it before the ledger's."""
    institution, profile = await levels.lock(session, institution_id)
    await evaluate_locked(session, institution, profile, as_of, cause=cause, actor=actor)


async def close_alert(
    session: AsyncSession,
    institution_id: UUID,
    kind: AlertKind,
    key: str,
    *,
    now: datetime,
    reason: str,
    actor: str,
) -> bool:
    """Close the open alert `kind`/`key` (the key as given to `raise_alert`) and settle the level;
    True when one was open."""
    return bool(
        await close_alerts(
            session, institution_id, [full_key(kind, key)], now=now, reason=reason, actor=actor
        )
    )


async def level_as_of(session: AsyncSession, institution_id: UUID, moment: datetime) -> str:
    """The alert level the institution had at `moment`, from its recorded changes."""
    return await levels.level_as_of(session, institution_id, moment)


# --- stale breaks ---------------------------------------------------------------------------------


def _stale_reason(found: ReconciliationBreak, day: date, slug: str) -> str:
    amount = found.amount_fen if found.amount_fen is not None else found.expected_fen
    said = "no amount" if amount is None else f"{amount} fen"
    return (
        f"{found.type} break open since {found.opened_at:%Y-%m-%d %H:%M} UTC, statement of {day} "
        f"(bank {slug!r}), {said}: {found.detail}"
    )


async def raise_stale_breaks(
    session: AsyncSession,
    as_of: datetime,
    after: tuple[datetime, UUID] | None,
    *,
    institution_id: UUID | None = None,
    actor: str = JOB_ACTOR,
) -> tuple[int, tuple[datetime, UUID] | None]:
    """One batch of breaks open since before `as_of` less a day (of one institution, or of all),
    oldest first after `after`: a YELLOW alert for each that has none yet, then the level of each
    institution concerned settled, in the order of their ids. Returns how many it raised and the
    position of the last break looked at (None when it was the last batch)."""
    query = (
        select(ReconciliationBreak, ReconciliationRun.statement_date, ReconciliationRun.bank_slug)
        .join(
            ReconciliationRun,
            and_(
                ReconciliationRun.institution_id == ReconciliationBreak.institution_id,
                ReconciliationRun.id == ReconciliationBreak.run_id,
            ),
        )
        .where(
            ReconciliationBreak.status == BreakStatus.open,
            ReconciliationBreak.opened_at < as_of - STALE_AFTER,
        )
        .order_by(ReconciliationBreak.opened_at, ReconciliationBreak.id)
        .limit(BATCH)
    )
    if institution_id is not None:
        query = query.where(ReconciliationBreak.institution_id == institution_id)
    if after is not None:
        opened_at, break_id = after
        query = query.where(
            or_(
                ReconciliationBreak.opened_at > opened_at,
                and_(ReconciliationBreak.opened_at == opened_at, ReconciliationBreak.id > break_id),
            )
        )
    stale = (await session.execute(query)).all()
    if not stale:
        return 0, None
    raised_before = set(
        (
            await session.execute(
                select(Alert.institution_id, Alert.key).where(
                    Alert.institution_id.in_({found.institution_id for found, _, _ in stale}),
                    Alert.key.in_([break_alert_key(found.id) for found, _, _ in stale]),
                )
            )
        ).all()
    )
    raised = 0
    concerned: set[UUID] = set()
    for found, day, slug in stale:
        if (found.institution_id, break_alert_key(found.id)) in raised_before:
            continue
        if await raise_alert(
            session,
            found.institution_id,
            AlertKind.reconciliation_break,
            AlertLevel.yellow,
            key=str(found.id),
            reason=_stale_reason(found, day, slug),
            figures={
                "break_id": str(found.id),
                "type": found.type,
                "statement_date": day.isoformat(),
                "amount_fen": found.amount_fen,
                "expected_fen": found.expected_fen,
            },
            now=as_of,
            actor=actor,
            settle=False,
        ):
            raised += 1
            concerned.add(found.institution_id)
    for each in sorted(concerned):
        await levels.settle_by_id(
            session, each, now=as_of, cause="reconciliation break open more than a day", actor=actor
        )
    last = stale[-1][0]
    return raised, (last.opened_at, last.id) if len(stale) == BATCH else None


# --- the job --------------------------------------------------------------------------------------


async def evaluate_alerts(db: Database, as_of: datetime) -> int:
    """The `evaluate_alerts` job: stale breaks first (in batches across institutions), then every
    institution in batches of ids, each in a transaction of its own under its row lock. Safe to run
    twice (an open alert is never raised again) and on two processes at once (the row lock makes
    the second wait and then find the first's alerts). Returns how many institutions it
    evaluated."""
    position_: tuple[datetime, UUID] | None = None
    while True:
        _, position_ = await db.run(partial(_stale_batch, as_of=as_of, after=position_))
        if position_ is None:
            break
    evaluated = 0
    after: UUID | None = None
    while True:
        ids = await db.run(partial(_institution_ids, as_of=as_of, after=after))
        for institution_id in ids:
            await db.run(partial(_evaluate_one, institution_id=institution_id, as_of=as_of))
            evaluated += 1
        if len(ids) < BATCH:
            return evaluated
        after = ids[-1]


async def _stale_batch(
    session: AsyncSession, as_of: datetime, after: tuple[datetime, UUID] | None
) -> tuple[int, tuple[datetime, UUID] | None]:
    return await raise_stale_breaks(session, as_of, after)


async def _institution_ids(
    session: AsyncSession, as_of: datetime, after: UUID | None
) -> list[UUID]:
    query = (
        select(Institution.id)
        .where(Institution.created_at <= as_of)
        .order_by(Institution.id)
        .limit(BATCH)
    )
    if after is not None:
        query = query.where(Institution.id > after)
    return list(await session.scalars(query))


async def _evaluate_one(session: AsyncSession, institution_id: UUID, as_of: datetime) -> None:
    await evaluate(session, institution_id, as_of, cause="evaluate_alerts", actor=JOB_ACTOR)
