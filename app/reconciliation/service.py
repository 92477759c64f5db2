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
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import chain
from uuid import UUID, uuid4

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts.engine import evaluate_money
from app.alerts.service import raise_alert
from app.auth.principal import Principal
from app.auth.scope import scoped_page
from app.banks.config import BankSetup
from app.banks.protocol import Direction, StatementReader
from app.instructions.outcomes import Applied, Outcome, apply_outcome, apply_to, locked_instruction
from app.kit.collector import collector_paused
from app.kit.errors import Unprocessable
from app.kit.pagination import PageRequest
from app.kit.workdays import local_date
from app.ledger import service as ledger
from app.ledger.books import institution_books
from app.models import (
    Enrollment,
    Institution,
    Instruction,
    PendingMovement,
    ReconciliationBreak,
    ReconciliationRun,
    Refund,
)
from app.models.alert import AlertKind
from app.models.institution import AlertLevel
from app.models.instruction import ResultStatus
from app.models.reconciliation import BreakStatus, BreakType, RunStatus
from app.payments.service import BankPayment, PaymentResult, credit_payment
from app.reconciliation import breaks, repository
from app.reconciliation.breaks import BY_STATEMENT
from app.reconciliation.matching import Break, Matcher, Movement, balance_breaks

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
    bank: BankSetup,
    bank_message_id: UUID,
    read: Callable[[], StatementReader],
    now: datetime,
) -> ReconciliationRun:
    """Read the statement (`read` gives a reader of the file) in one pass and record its run for
    the institution whose escrow account it is at `bank`: a break for each line or movement that
    does not match and for a balance that does not roll forward or agree with the ledger, the
    repairs the statement proves (module doc), and the bank's closing balance as the institution's
    bank balance (when the statement is its latest). Raises StatementMalformed (from the reader),
    UnknownEscrowAccount, StatementInFuture.

    A busy day is a million lines and movements, none in a cycle: the cyclic collector is paused
    while they are alive (`app.kit.collector`)."""
    with collector_paused():
        return await _record_run(session, bank, bank_message_id, read, now)


async def _record_run(
    session: AsyncSession,
    bank: BankSetup,
    bank_message_id: UUID,
    read: Callable[[], StatementReader],
    now: datetime,
) -> ReconciliationRun:
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
        .where(Institution.escrow_account_no == account_no, Institution.bank_slug == bank.slug)
        .with_for_update()
    )
    if institution is None:
        raise UnknownEscrowAccount(
            f"no institution at bank {bank.slug!r} holds account {account_no}",
            account_no=account_no,
        )
    run_id = uuid4()
    superseded = await _supersede_earlier_runs(session, institution.id, day, run_id, now)
    side = await repository.ledger_side(
        session, institution.id, day, now, superseded_runs=superseded
    )
    watched = side.unsettled | side.carried | side.optional
    matcher = Matcher(side.movements, window=WINDOW)
    # `listed`: the watched movements a line matched.
    found, listed = matcher.take(chain([] if first is None else [first], lines), watched)
    summary = reader.summary()
    end = cut_off(day)
    result = matcher.finish(grace_cutoff=end - bank.statements.grace)
    listed.update(match.movement_id for match in result.matches if match.movement_id in watched)
    reported = await _reported_missing(session, institution.id, side.carried)
    for difference in result.breaks:
        if difference.type is BreakType.missing_at_bank and (
            difference.movement_id in side.optional or difference.movement_id in reported
        ):
            continue  # never sent, or already reported missing by an earlier statement
        found.append(difference)
    young = [m for m in result.pending if m.at < end and m.id not in side.optional]

    run = ReconciliationRun(
        institution_id=institution.id,
        id=run_id,
        bank_slug=bank.slug,
        bank_message_id=bank_message_id,
        account_no=account_no,
        statement_date=day,
        status=RunStatus.clean,
        lines=summary.lines,
        opening_fen=summary.opening_fen,
        closing_fen=summary.closing_fen,
        credits_fen=summary.credits_fen,
        debits_fen=summary.debits_fen,
        ledger_balance_fen=0,
        created_at=now,
    )
    session.add(run)
    await session.flush()
    settling = sorted(listed & side.unsettled)
    await _lock_in_order(session, institution.id, settling, found)
    for instruction_id in settling:
        # The bank's statement is a result too: the instruction it lists was executed.
        await apply_outcome(session, instruction_id, Outcome(ResultStatus.settled))
        side.outside_escrow.discard(instruction_id)
    await _follow_movements(session, institution.id, run, side, listed, found, young, now)
    repairs: dict[int, Repair] = {}  # by id() of the break whose money is in the books now
    for difference in found:
        repair = await _repair(session, bank, institution, difference)
        if repair is not None:
            repairs[id(difference)] = repair

    # The balances: the ledger's at the cut-off, and what the itemised breaks explain of the
    # bank's closing (the repairs above are in the ledger's books now, so they explain nothing).
    connection = await session.connection()
    books = await institution_books(connection, institution.id)
    escrow = (await ledger.accounts(connection, institution.id))[books.escrow_cash.id]
    after = {m.id: m for m in side.movements if m.at >= end and m.id not in side.outside_escrow}
    ledger_fen = escrow.normal_balance_fen - sum(m.signed_fen for m in after.values())
    explained = sum(after[each].signed_fen for each in listed if each in after)
    explained -= sum(m.signed_fen for m in young if m.id not in side.outside_escrow)
    for difference in found:
        if id(difference) in repairs:
            continue
        booked = difference.movement_id not in side.outside_escrow
        if difference.type is BreakType.missing_at_bank:
            explained -= difference.signed_fen if booked else 0  # the ledger's: not the bank's
        elif difference.type is BreakType.amount_mismatch and booked:
            explained += difference.signed_fen - difference.expected_signed_fen
        else:
            explained += difference.signed_fen
    found.extend(balance_breaks(summary, ledger_fen, explained))
    run.ledger_balance_fen = ledger_fen
    run.status = RunStatus.breaks if found else RunStatus.clean

    for difference in found:
        repair = repairs.get(id(difference))
        note = None if repair is None else repair.close_note
        detail = difference.detail
        if repair is not None and repair.held is not None:
            detail += f"; {repair.held}"
        session.add(
            ReconciliationBreak(
                institution_id=institution.id,
                id=uuid4(),
                run_id=run.id,
                type=difference.type,
                status=BreakStatus.open if note is None else BreakStatus.closed,
                line_number=difference.line_number,
                bank_reference=difference.bank_reference,
                movement_id=difference.movement_id,
                amount_fen=difference.actual_fen,
                expected_fen=difference.expected_fen,
                detail=detail[:500],
                opened_at=now,
                opened_by=BY_STATEMENT,
                closed_at=None if note is None else now,
                closed_by=None if note is None else BY_STATEMENT,
                close_note=note,
            )
        )
    await _raise_money_out_alerts(session, bank.slug, institution.id, day, found, bank_message_id)
    # A corrected statement of the latest day corrects the balance too.
    if institution.bank_balance_as_of is None or institution.bank_balance_as_of <= end:
        institution.bank_balance_fen = summary.closing_fen
        institution.bank_balance_as_of = end
    await session.flush()
    # The bank's balance is part of B: the balance triggers, in this transaction.
    await evaluate_money(
        session,
        institution.id,
        now,
        cause=f"statement of {day} (closing {summary.closing_fen} fen)",
        actor=f"bank:{bank.slug}",
    )
    return run


async def _lock_in_order(
    session: AsyncSession, institution_id: UUID, settling: list[str], found: list[Break]
) -> None:
    """Lock every instruction and enrollment the statement's results and repairs will touch, in
    the order every other writer takes them (instruction, enrollment, then the ledger), before
    the first of them takes the ledger: settling one instruction and then crediting another
    enrollment would otherwise take an enrollment after the ledger, against a lesson recorded
    meanwhile that holds the enrollment and waits for the ledger."""
    instruction_ids = sorted(
        {*settling}
        | {
            each.instruction_id
            for each in found
            if each.type is BreakType.returned and each.instruction_id is not None
        }
    )
    order_nos = sorted(
        {
            each.order_no
            for each in found
            if each.type is BreakType.missing_in_ledger and each.order_no is not None
        }
    )
    if instruction_ids:
        await session.execute(
            select(Instruction.id)
            .where(
                Instruction.institution_id == institution_id, Instruction.id.in_(instruction_ids)
            )
            .order_by(Instruction.id)
            .with_for_update()
        )
    refunded = select(Refund.enrollment_id).where(
        Refund.institution_id == institution_id, Refund.instruction_id.in_(instruction_ids)
    )
    if instruction_ids or order_nos:
        await session.execute(
            select(Enrollment.id)
            .where(
                Enrollment.institution_id == institution_id,
                or_(Enrollment.id.in_(refunded), Enrollment.order_no.in_(order_nos)),
            )
            .order_by(Enrollment.id)
            .with_for_update()
        )


async def _supersede_earlier_runs(
    session: AsyncSession, institution_id: UUID, day: date, run_id: UUID, now: datetime
) -> list[UUID]:
    """A second statement of the same account and day (a different file: the same file is the
    same message) corrects the first: the earlier runs stand aside, their open breaks close, and
    what they carried or listed is looked at again. A day's `missing` run closes, its statement
    come. Returns every superseded run of the day."""
    earlier = list(
        (
            await session.scalars(
                select(ReconciliationRun)
                .where(
                    ReconciliationRun.institution_id == institution_id,
                    ReconciliationRun.statement_date == day,
                )
                .with_for_update()
            )
        ).all()
    )
    if not earlier:
        return []
    if any(run.status == RunStatus.missing for run in earlier):
        await breaks.statement_arrived(session, institution_id, day, run_id, now)
    replaced = [run for run in earlier if run.status in (RunStatus.clean, RunStatus.breaks)]
    for run in replaced:
        run.status = RunStatus.superseded
    if replaced:
        await breaks.close(
            session,
            await breaks.open_breaks(
                session, institution_id, types=list(BreakType), run_ids=[r.id for r in replaced]
            ),
            by=BY_STATEMENT,
            note=f"superseded by a corrected statement of {day} (run {run_id})",
            now=now,
        )
    superseded = [run.id for run in earlier if run.status == RunStatus.superseded]
    if superseded:
        start = repository.day_bounds(day)[0]
        await session.execute(
            delete(PendingMovement).where(
                PendingMovement.institution_id == institution_id,
                or_(
                    PendingMovement.run_id.in_(superseded),
                    PendingMovement.listed_run_id.in_(superseded) & (PendingMovement.at >= start),
                ),
            )
        )
        await session.execute(
            update(PendingMovement)
            .where(
                PendingMovement.institution_id == institution_id,
                PendingMovement.listed_run_id.in_(superseded),
            )
            .values(listed_run_id=None)
        )
    return superseded


async def _reported_missing(
    session: AsyncSession, institution_id: UUID, carried: set[str]
) -> set[str]:
    """The carried movements a statement already reported missing at the bank (open or closed
    since by hand): reported once."""
    if not carried:
        return set()
    rows = await session.scalars(
        select(ReconciliationBreak.movement_id).where(
            ReconciliationBreak.institution_id == institution_id,
            ReconciliationBreak.type == BreakType.missing_at_bank,
            ReconciliationBreak.movement_id.in_(list(carried)),
        )
    )
    return {movement_id for movement_id in rows if movement_id is not None}


async def _follow_movements(
    session: AsyncSession,
    institution_id: UUID,
    run: ReconciliationRun,
    side: repository.LedgerSide,
    listed: set[str],
    found: list[Break],
    young: list[Movement],
    now: datetime,
) -> None:
    """Remember what later statements need: the movements too young to be due (carried), those
    missing at the bank (still looked for), those this statement listed ahead of their day (not
    looked for again); and close the missing-at-bank breaks of the carried ones it listed."""
    carried_listed = sorted(listed & side.carried)
    if carried_listed:
        await session.execute(
            update(PendingMovement)
            .where(
                PendingMovement.institution_id == institution_id,
                PendingMovement.movement_id.in_(carried_listed),
            )
            .values(listed_run_id=run.id)
        )
        await breaks.close(
            session,
            [
                each
                for movement_id in carried_listed
                for each in await breaks.open_breaks(
                    session,
                    institution_id,
                    types=[BreakType.missing_at_bank],
                    movement_id=movement_id,
                )
            ],
            by=BY_STATEMENT,
            note=f"listed on the statement of {run.statement_date} (run {run.id})",
            now=now,
        )
    by_id = {m.id: m for m in side.movements if m.id in side.optional and m.id in listed}
    missing = {
        difference.movement_id
        for difference in found
        if difference.type is BreakType.missing_at_bank
        and difference.movement_id is not None
        and difference.movement_id not in side.carried
    }
    if missing:
        by_id.update({m.id: m for m in side.movements if m.id in missing})
    for movement in [*by_id.values(), *young]:
        session.add(
            PendingMovement(
                institution_id=institution_id,
                movement_id=movement.id,
                run_id=run.id,
                kind=movement.kind,
                direction=movement.direction,
                amount_fen=movement.amount_fen,
                at=movement.at,
                bank_reference=movement.bank_reference,
                reference=movement.reference,
                listed_run_id=run.id if movement.id in listed else None,
            )
        )


@dataclass(frozen=True, slots=True)
class Repair:
    """The line's money is in the ledger's books now; `close_note` when that settles the break,
    `held` saying where it waits when it does not."""

    close_note: str | None
    held: str | None = None


async def _repair(
    session: AsyncSession, bank: BankSetup, institution: Institution, difference: Break
) -> Repair | None:
    """Put right in the ledger what the statement's line proves, once: money at the bank the
    ledger never heard of is credited (to its enrollment when it quotes one awaiting payment,
    else held in suspense), and a payout or refund the bank gave back goes back where it came
    from. None when nothing was put right."""
    line = difference.line
    if line is None:
        return None
    if difference.type is BreakType.missing_in_ledger:
        outcome = await credit_payment(
            session,
            BankPayment(
                bank_slug=bank.slug,
                bank_reference=line.bank_reference,
                escrow_account_no=institution.escrow_account_no,
                order_no=difference.order_no,
                amount_fen=line.amount_fen,
                paid_at=line.booked_at,
                payer_name=line.counterparty_name,
                payer_account_no=line.counterparty_account_no,
            ),
        )
        if outcome.result is PaymentResult.credited:
            return Repair(
                f"the ledger had it already (payment {line.bank_reference})"
                if outcome.replayed
                else f"credited to enrollment {outcome.enrollment_id} from the statement: "
                "its notification never came"
            )
        return Repair(None, held=f"held in suspense ({outcome.reason}) until someone resolves it")
    if difference.type is BreakType.returned and difference.instruction_id is not None:
        instruction = await locked_instruction(session, difference.instruction_id)
        if (
            instruction is None
            or instruction.institution_id != institution.id
            or instruction.bank_slug != bank.slug
        ):
            return None
        applied = await apply_to(
            session, instruction, Outcome(ResultStatus.returned, reason="returned (statement)")
        )
        if applied is Applied.changed:
            return Repair(
                f"the money of {instruction.kind} {instruction.id} is back where it came from"
            )
        if applied is Applied.unchanged:
            return Repair(
                f"the ledger had the return of {instruction.kind} {instruction.id} already"
            )
    return None


async def _raise_money_out_alerts(
    session: AsyncSession,
    slug: str,
    institution_id: UUID,
    day: date,
    found: list[Break],
    bank_message_id: UUID,
) -> None:
    """Money that left with no instruction, or a second time for one, is the most serious break
    there is: RED at once. Keyed as the inbox keys it, so a debit both notified and listed raises
    one alert."""
    for debit in found:
        if debit.direction is not Direction.debit or debit.type not in (
            BreakType.unauthorized_debit,
            BreakType.duplicate,
        ):
            continue
        await raise_alert(
            session,
            institution_id,
            AlertKind.unauthorized_debit,
            AlertLevel.red,
            key=f"{slug}:{debit.bank_reference}",
            actor=f"bank:{slug}",
            reason=f"money left without an instruction: {debit.detail} (statement of {day}, "
            f"bank {slug!r})",
            bank_message_id=bank_message_id,
        )


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
