"""Recording what a bank statement says of an escrow account: the run, its breaks, and the bank's
balance that the minimum-balance rule then uses (DOMAIN.md rule 8: B is the lower of the ledger's
balance and the bank's last reported one).

The file is read once as it streams, holding no more than the lines still unmatched: its first line
says whose account and which day it is (a gmbank file says so only in its rows), then each line is
matched against the ledger's movements of that day (`app.reconciliation.matching`). A run is all or
nothing: it is recorded in the unit of work that reads the file, so a file that fails half-way
leaves no run, no break and no balance behind.
"""

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from itertools import chain
from uuid import UUID, uuid4

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts.service import raise_alert
from app.auth.principal import Principal
from app.auth.scope import scoped_page
from app.banks.protocol import StatementReader
from app.kit.errors import Unprocessable
from app.kit.pagination import PageRequest
from app.kit.workdays import local_date
from app.ledger import service as ledger
from app.ledger.books import institution_books
from app.models import Institution, ReconciliationBreak, ReconciliationRun
from app.models.alert import AlertKind
from app.models.institution import AlertLevel
from app.models.reconciliation import BreakStatus, BreakType, RunStatus
from app.reconciliation import repository
from app.reconciliation.matching import Break, Matcher, balance_breaks

# Who opens the breaks a statement shows (a person closes them by name).
BY_STATEMENT = "statement"
# How far apart the bank's booking and the ledger's moment may be for a line quoting no reference
# to match a movement of its amount.
WINDOW = timedelta(hours=1)


class UnknownEscrowAccount(Unprocessable):
    code = "unknown_escrow_account"
    title = "No institution at this bank holds the statement's account"


class StatementInFuture(Unprocessable):
    code = "statement_in_future"
    title = "The statement is dated in the future"


def cut_off(day: date) -> datetime:
    """The end of the statement's business day, Asia/Shanghai."""
    return repository.day_bounds(day)[1]


async def record_run(
    session: AsyncSession,
    slug: str,
    bank_message_id: UUID,
    read: Callable[[], StatementReader],
    now: datetime,
) -> ReconciliationRun:
    """Read the statement (`read` gives a reader of the file) in one pass and record its run for
    the institution whose escrow account it is at bank `slug`: a break for each line or movement
    that does not match and for each balance that does not roll forward or agree with the ledger,
    and the bank's closing balance as the institution's bank balance (when the statement is its
    latest). Raises StatementMalformed (from the reader), UnknownEscrowAccount, StatementInFuture."""
    reader = read()
    lines = reader.lines()
    first = next(lines, None)
    heading = reader.heading()
    if heading is None:  # a day without lines names its account and day at the end, or never
        heading = reader.summary().account_no, reader.summary().day
    account_no, day = heading
    if day > local_date(now):
        raise StatementInFuture(f"the statement is of {day}, after today {local_date(now)}")
    institution = await session.scalar(
        select(Institution)
        .where(Institution.escrow_account_no == account_no, Institution.bank_slug == slug)
        .with_for_update()
    )
    if institution is None:
        raise UnknownEscrowAccount(
            f"no institution at bank {slug!r} holds account {account_no}", account_no=account_no
        )
    matcher = Matcher(
        await repository.movements_of_day(session, institution.id, day), window=WINDOW
    )
    found = [
        outcome
        for outcome in map(matcher.first_pass, chain([] if first is None else [first], lines))
        if isinstance(outcome, Break)
    ]
    summary = reader.summary()
    connection = await session.connection()
    books = await institution_books(connection, institution.id)
    as_of = await ledger.balances_as_of(connection, institution.id, cut_off(summary.day))
    ledger_balance = as_of.get(books.escrow_cash.id, 0) * books.escrow_cash.normal
    # Every movement of the day is due on its statement: those it does not list are missing.
    found.extend(matcher.finish(grace_cutoff=cut_off(summary.day)).breaks)
    found.extend(balance_breaks(summary, ledger_balance))
    run = ReconciliationRun(
        institution_id=institution.id,
        id=uuid4(),
        bank_slug=slug,
        bank_message_id=bank_message_id,
        account_no=summary.account_no,
        statement_date=summary.day,
        status=RunStatus.breaks if found else RunStatus.clean,
        lines=summary.lines,
        opening_fen=summary.opening_fen,
        closing_fen=summary.closing_fen,
        credits_fen=summary.credits_fen,
        debits_fen=summary.debits_fen,
        ledger_balance_fen=ledger_balance,
        created_at=now,
    )
    session.add(run)
    for difference in found:
        session.add(
            ReconciliationBreak(
                institution_id=institution.id,
                id=uuid4(),
                run_id=run.id,
                type=difference.type,
                status=BreakStatus.open,
                line_number=difference.line_number,
                bank_reference=difference.bank_reference,
                movement_id=difference.movement_id,
                amount_fen=difference.actual_fen,
                expected_fen=difference.expected_fen,
                detail=difference.detail[:500],
                opened_at=now,
                opened_by=BY_STATEMENT,
            )
        )
    for debit in (each for each in found if each.type == BreakType.unauthorized_debit):
        # The most serious break there is: RED at once. Keyed as the inbox keys it, so a debit
        # both notified and listed raises one alert.
        await raise_alert(
            session,
            institution.id,
            AlertKind.unauthorized_debit,
            AlertLevel.red,
            key=f"{slug}:{debit.bank_reference}",
            reason=f"money left without an instruction: {debit.detail} (statement of "
            f"{summary.day}, bank {slug!r})",
            bank_message_id=bank_message_id,
        )
    reported = cut_off(summary.day)
    if institution.bank_balance_as_of is None or institution.bank_balance_as_of < reported:
        institution.bank_balance_fen = summary.closing_fen
        institution.bank_balance_as_of = reported
    await session.flush()
    return run


async def run_of_message(session: AsyncSession, bank_message_id: UUID) -> ReconciliationRun:
    """The run a stored statement made."""
    return (
        await session.scalars(
            select(ReconciliationRun).where(ReconciliationRun.bank_message_id == bank_message_id)
        )
    ).one()


async def breaks_of(
    session: AsyncSession, runs: Sequence[ReconciliationRun]
) -> dict[UUID, list[ReconciliationBreak]]:
    """Each run's breaks, oldest first."""
    found: dict[UUID, list[ReconciliationBreak]] = {run.id: [] for run in runs}
    if not runs:
        return found
    rows = await session.scalars(
        select(ReconciliationBreak)
        .where(ReconciliationBreak.run_id.in_(list(found)))
        .order_by(ReconciliationBreak.opened_at, ReconciliationBreak.id)
    )
    for row in rows:
        found[row.run_id].append(row)
    return found


async def page(
    session: AsyncSession,
    caller: Principal,
    page_request: PageRequest,
    *,
    institution_id: UUID | None = None,
    statement_date: date | None = None,
    status: RunStatus | None = None,
) -> tuple[Sequence[ReconciliationRun], str | None]:
    """The runs the caller sees, oldest first, filtered by institution, day and status."""
    return await scoped_page(
        session,
        caller,
        ReconciliationRun,
        page_request,
        institution_id=institution_id,
        statement_date=statement_date,
        status=status,
    )
