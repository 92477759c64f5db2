"""The watch over reconciliation (job `watch_reconciliation`): a day whose statement never came is
a break of its own, and a break left open more than a day raises a YELLOW alert (DOMAIN.md); the
alert engine raises those (`engine.raise_stale_breaks`, also run by `evaluate_alerts`), this job
runs it too so that watching reconciliation alone keeps them raised.

A bank owes a statement of each escrow account for every day, or for every working day
(`statement_days`), due `statement_due_hours` after the day ends (Asia/Shanghai). A day owed and
due with no run at all gets a run of status `missing` and one open `statement_missing` break. Such
a run reports nothing: it has no statement, so its line count and every balance are 0 (the bank's
last known balance would read as the bank's word for that day, and the ledger's is in the balance
view). Its id is derived from the institution and the day, so two watchers at once make one run.

Days are looked at back to `LOOKBACK` before the job's day, no further: a service that was down,
or a bank configured late, opens at most a month of missing runs, and the question stays cheap.
"""

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from functools import partial
from uuid import NAMESPACE_URL, UUID, uuid5

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts.engine import raise_stale_breaks
from app.db.dialect import insert_for
from app.db.unit import Database
from app.kit.workdays import is_workday, local_date
from app.models import Bank, Institution, ReconciliationBreak, ReconciliationRun
from app.models.reconciliation import BreakStatus, BreakType, RunStatus
from app.reconciliation.repository import day_bounds

BY_WATCH = "watch_reconciliation"
LOOKBACK = timedelta(days=31)
# Institutions, or breaks, per transaction.
BATCH = 500

_RUN_IDS = uuid5(NAMESPACE_URL, "prepaid-guard:missing-statement")


def owed_days(
    first: date, as_of: datetime, *, workdays_only: bool, due_after: timedelta
) -> list[date]:
    """The days, oldest first, for which a statement of an account opened on `first` is owed and
    due by `as_of`: from `first` (or `LOOKBACK` before as_of's day, if later) to the last day whose
    end, Asia/Shanghai, plus `due_after` has come; only working days when `workdays_only`."""
    day = max(first, local_date(as_of) - LOOKBACK)
    owed = []
    while day_bounds(day)[1] + due_after <= as_of:
        if not workdays_only or is_workday(day):
            owed.append(day)
        day += timedelta(days=1)
    return owed


def missing_run_id(institution_id: UUID, day: date) -> UUID:
    """The one id a missing run of this institution and day can have."""
    return uuid5(_RUN_IDS, f"{institution_id}:{day.isoformat()}")


async def watch_reconciliation(db: Database, as_of: datetime) -> int:
    """Raise the alerts of breaks open more than a day, then open the runs and breaks of
    statements missing by `as_of` (alerts first: a day the calendar cannot count for a bank owing
    working days refuses the rest, CalendarNotPublished, and must not hold the alerts back).
    Returns how many alerts it raised plus how many runs it opened."""
    handled = 0
    position: tuple[datetime, UUID] | None = None
    while True:
        raised, position = await db.run(
            partial(raise_stale_breaks, as_of=as_of, after=position, actor=f"job:{BY_WATCH}")
        )
        handled += raised
        if position is None:
            break
    after: UUID | None = None
    while True:
        opened, after = await db.run(partial(_open_missing, as_of=as_of, after=after))
        handled += opened
        if after is None:
            return handled


async def _open_missing(
    session: AsyncSession, as_of: datetime, after: UUID | None
) -> tuple[int, UUID | None]:
    """One batch of institutions (by id, after `after`) at a configured bank: a missing run and
    its break for each day owed, due and without a run. Returns how many runs it opened and the
    last institution looked at (None when it was the last batch)."""
    query = (
        select(
            Institution.id,
            Institution.created_at,
            Institution.bank_slug,
            Institution.escrow_account_no,
            Bank.statement_days,
            Bank.statement_due_hours,
        )
        .join(Bank, Bank.slug == Institution.bank_slug)
        .where(Institution.created_at <= as_of)
        .order_by(Institution.id)
        .limit(BATCH)
    )
    if after is not None:
        query = query.where(Institution.id > after)
    institutions = (await session.execute(query)).all()
    if not institutions:
        return 0, None
    # The days each bank's schedule owes since LOOKBACK, counted once: an institution owes those
    # from the day it was onboarded (the calendar is slow to ask, and asked the same).
    schedules: dict[tuple[str, int], list[date]] = {}
    for row in institutions:
        schedule = (row.statement_days, row.statement_due_hours)
        if schedule not in schedules:
            schedules[schedule] = owed_days(
                date.min,
                as_of,
                workdays_only=row.statement_days == "workdays",
                due_after=timedelta(hours=row.statement_due_hours),
            )
    owed = {
        row.id: [
            day
            for day in schedules[row.statement_days, row.statement_due_hours]
            if day >= local_date(row.created_at)
        ]
        for row in institutions
    }
    missing = await _without_run(session, owed)
    if missing:
        # A statement being recorded holds its institution's row (record_run): taken here too and
        # the runs read again, a statement and this job never both stand for one day.
        await session.execute(
            select(Institution.id)
            .where(Institution.id.in_(sorted(missing)))
            .order_by(Institution.id)
            .with_for_update()
        )
        missing = await _without_run(session, missing)
    accounts = {row.id: row for row in institutions}
    runs = [
        {
            "institution_id": institution_id,
            "id": missing_run_id(institution_id, day),
            "bank_slug": accounts[institution_id].bank_slug,
            "bank_message_id": None,
            "account_no": accounts[institution_id].escrow_account_no,
            "statement_date": day,
            "status": RunStatus.missing,
            "lines": 0,
            "opening_fen": 0,
            "closing_fen": 0,
            "credits_fen": 0,
            "debits_fen": 0,
            "ledger_balance_fen": 0,
            "created_at": as_of,
        }
        for institution_id, days in missing.items()
        for day in days
    ]
    opened = 0
    if runs:
        opened = await _insert_new(session, ReconciliationRun, runs)
        await _insert_new(
            session,
            ReconciliationBreak,
            [_missing_break(run, as_of) for run in runs],
        )
    last = institutions[-1].id if len(institutions) == BATCH else None
    return opened, last


async def _without_run(
    session: AsyncSession, owed: dict[UUID, list[date]]
) -> dict[UUID, list[date]]:
    """Of the days owed per institution, those with no run of any status: one query for all."""
    earliest = min((days[0] for days in owed.values() if days), default=None)
    if earliest is None:
        return {}
    ran = {
        (row.institution_id, row.statement_date)
        for row in await session.execute(
            select(ReconciliationRun.institution_id, ReconciliationRun.statement_date)
            .where(
                ReconciliationRun.institution_id.in_([key for key, days in owed.items() if days]),
                ReconciliationRun.statement_date >= earliest,
            )
            .distinct()
        )
    }
    without = {
        institution_id: [day for day in days if (institution_id, day) not in ran]
        for institution_id, days in owed.items()
    }
    return {institution_id: days for institution_id, days in without.items() if days}


def _missing_break(run: dict[str, object], as_of: datetime) -> dict[str, object]:
    return {
        "institution_id": run["institution_id"],
        "id": uuid5(_RUN_IDS, f"{run['id']}:{BreakType.statement_missing}"),
        "run_id": run["id"],
        "type": BreakType.statement_missing,
        "status": BreakStatus.open,
        "line_number": None,
        "bank_reference": None,
        "movement_id": None,
        "amount_fen": None,
        "expected_fen": None,
        "detail": f"bank {run['bank_slug']!r} sent no statement of account {run['account_no']} "
        f"for {run['statement_date']}",
        "opened_at": as_of,
        "opened_by": BY_WATCH,
        "closed_at": None,
        "closed_by": None,
        "close_note": None,
    }


async def _insert_new(
    session: AsyncSession,
    model: type[ReconciliationRun] | type[ReconciliationBreak],
    rows: Sequence[dict[str, object]],
) -> int:
    """Insert the rows whose key is not taken (a watcher at the same time inserted those); returns
    how many this one inserted. Many rows are sent as few statements (SQLAlchemy's insertmanyvalues
    pages them within the database's parameter limit)."""
    connection = await session.connection()
    table = model.__table__
    inserted = await connection.execute(
        insert_for(connection, table)
        .on_conflict_do_nothing(index_elements=["institution_id", "id"])
        .returning(table.c.id),
        list(rows),
    )
    return len(inserted.all())
