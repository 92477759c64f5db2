"""The ledger's side of a statement: the movements of an institution's escrow account that a
statement of one day may list, and which of them the ledger's escrow cash holds yet."""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import DateTime, Row, Select, Text, cast, literal, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.banks.protocol import Direction
from app.kit.clock import SHANGHAI, as_utc
from app.ledger import repository as ledger_repository
from app.models import Enrollment, Instruction, PendingMovement, SuspenseItem
from app.models.instruction import InstructionKind, InstructionStatus
from app.reconciliation.matching import Movement, MovementKind

# Rows fetched at a time from the server.
BATCH_ROWS = 10_000
# Instructions the bank has, had, or may have had (one written but not yet marked sent may have
# reached the bank before its sender stopped): each leaves the account once.
LISTABLE = (
    InstructionStatus.pending,
    InstructionStatus.sent,
    InstructionStatus.succeeded,
    InstructionStatus.returned,
)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The business day, Asia/Shanghai, as [start, end)."""
    start = datetime.combine(day, time(0), SHANGHAI)
    return start, start + timedelta(days=1)


@dataclass(slots=True)
class LedgerSide:
    """What the ledger knows of the escrow account from the statement day's start until now.

    `movements` are all the statement may list: the day's, those carried from earlier statements
    (`carried`), and those after its cut-off (`after_cutoff`: the bank's clock and ours differ by
    moments, so a line may list one; none is due on it). `optional` need not be listed: those after
    the cut-off and instructions never marked sent. `outside_escrow` are not in the ledger's escrow
    cash yet (instructions not settled, and both sides of one returned before it left); every
    other movement is. `unsettled` are instructions a listed debit settles. The sets are small: a
    busy day's million movements are payments, in none of them."""

    movements: list[Movement] = field(default_factory=list)
    carried: set[str] = field(default_factory=set)
    optional: set[str] = field(default_factory=set)
    outside_escrow: set[str] = field(default_factory=set)
    unsettled: set[str] = field(default_factory=set)

    def add(self, movement: Movement, *, in_escrow: bool, cut_off: datetime) -> None:
        self.movements.append(movement)
        if not in_escrow:
            self.outside_escrow.add(movement.id)
        if movement.at >= cut_off:
            self.optional.add(movement.id)


async def ledger_side(
    session: AsyncSession,
    institution_id: UUID,
    day: date,
    now: datetime,
    *,
    superseded_runs: list[UUID],
) -> LedgerSide:
    """The movements a statement of `day` may list, read at `now`. Movements an earlier statement
    listed already (ahead of their day) are left out, unless that statement was superseded."""
    start, end = day_bounds(day)
    until = max(end, now)
    side = LedgerSide()
    listed = await _listed_ahead(session, institution_id, start, superseded_runs)

    connection = await session.connection()
    await _payments(connection, institution_id, side, start, until, end)
    await _instructions(session, institution_id, side, start, until, end)
    await _carried(session, institution_id, side, start, superseded_runs)
    if listed:
        side.movements = [m for m in side.movements if m.id not in listed]
    return side


async def _payments(
    connection: AsyncConnection,
    institution_id: UUID,
    side: LedgerSide,
    start: datetime,
    until: datetime,
    end: datetime,
) -> None:
    """Payments credited to an enrollment, or held in suspense (unless its money moved on to the
    enrollment its notification named at last, which lists it now): all in escrow cash.

    A busy day is a million of them: read as plain columns through Core (ORM objects would cost
    several times the movements made of them), streamed in batches so the rows are never all in
    memory next to the movements, and made positionally with names bound once."""
    add, optional = side.movements.append, side.optional.add
    credit, payment = Direction.credit, MovementKind.payment
    # On PostgreSQL the id becomes text and the moment arrives in UTC from the driver itself: a
    # million UUID objects formatted and a million type conversions in Python spared. SQLite
    # keeps its ids as bare hex and its moments naive, so there they go through their types.
    native = connection.dialect.name == "postgresql"
    queries: list[tuple[str, Select[*tuple[Any, ...]]]] = []
    for prefix, table, fen, at, serial, done in (
        (
            "payment:",
            Enrollment,
            Enrollment.paid_fen,
            Enrollment.paid_at,
            Enrollment.payment_reference,
            None,
        ),
        (
            "suspense:",
            SuspenseItem,
            SuspenseItem.amount_fen,
            SuspenseItem.received_at,
            SuspenseItem.bank_reference,
            SuspenseItem.resolved_at,
        ),
    ):
        columns = (
            (literal(prefix) + cast(table.id, Text), type_coerce(at, DateTime(timezone=True)))
            if native
            else (table.id, at)
        )
        query = select(columns[0], fen, columns[1], serial, table.order_no).where(
            table.institution_id == institution_id, at >= start, at < until
        )
        if done is not None:
            query = query.where(done.is_(None))
        queries.append((prefix, query))
    for prefix, query in queries:
        async for rows in _batches(connection, query):
            for row_id, fen, at, serial, order_no in rows:
                movement_id = row_id if native else f"{prefix}{row_id}"
                add(Movement(movement_id, payment, credit, fen, at, serial, order_no))
                if at >= end:
                    optional(movement_id)


async def _batches(
    connection: AsyncConnection, statement: Select[*tuple[Any, ...]]
) -> AsyncIterator[Sequence[Row[*tuple[Any, ...]]]]:
    result = await connection.stream(statement.execution_options(yield_per=BATCH_ROWS))
    async for rows in result.partitions():
        yield rows


async def _instructions(
    session: AsyncSession,
    institution_id: UUID,
    side: LedgerSide,
    start: datetime,
    until: datetime,
    end: datetime,
) -> None:
    """Payouts and refunds that left (or may have), and the money of returned ones come back."""
    rows = (
        await session.execute(
            select(
                Instruction.id,
                Instruction.kind,
                Instruction.status,
                Instruction.amount_fen,
                Instruction.created_at,
                Instruction.sent_at,
                Instruction.resolved_at,
            ).where(
                Instruction.institution_id == institution_id,
                Instruction.status.in_(LISTABLE),
                or_(
                    (Instruction.sent_at >= start) & (Instruction.sent_at < until),
                    (Instruction.sent_at.is_(None)) & (Instruction.created_at < until),
                    (Instruction.status == InstructionStatus.returned)
                    & (Instruction.resolved_at >= start)
                    & (Instruction.resolved_at < until),
                ),
            )
        )
    ).all()
    returned = [row.id for row in rows if row.status == InstructionStatus.returned]
    # A return after the money left is posted under this key; one before it left voids the
    # transfer, and escrow cash never held either side.
    came_back = set()
    if returned:
        connection = await session.connection()
        keys = await ledger_repository.entries_by_key(
            connection, institution_id, [f"returned:{each}" for each in returned]
        )
        came_back = {key.removeprefix("returned:") for key in keys}
    for row in rows:
        sent_at = as_utc(row.sent_at) if row.sent_at is not None else None
        if sent_at is None or start <= sent_at < until:
            side.add(
                Movement(
                    id=row.id,
                    kind=MovementKind.payout
                    if row.kind == InstructionKind.payout
                    else MovementKind.refund,
                    direction=Direction.debit,
                    amount_fen=row.amount_fen,
                    at=sent_at or as_utc(row.created_at),
                    bank_reference=None,
                    reference=row.id,
                ),
                in_escrow=row.status == InstructionStatus.succeeded or row.id in came_back,
                cut_off=end,
            )
            if row.status in (InstructionStatus.pending, InstructionStatus.sent):
                side.unsettled.add(row.id)
            if sent_at is None:
                side.optional.add(row.id)  # the bank may never have seen it
        resolved_at = as_utc(row.resolved_at) if row.resolved_at is not None else None
        if (
            row.status == InstructionStatus.returned
            and resolved_at is not None
            and start <= resolved_at < until
        ):
            side.add(
                Movement(
                    id=f"return:{row.id}",
                    kind=MovementKind.returned,
                    direction=Direction.credit,
                    amount_fen=row.amount_fen,
                    at=resolved_at,
                    bank_reference=None,
                    reference=row.id,
                ),
                in_escrow=row.id in came_back,
                cut_off=end,
            )


async def _carried(
    session: AsyncSession,
    institution_id: UUID,
    side: LedgerSide,
    start: datetime,
    superseded_runs: list[UUID],
) -> None:
    """Movements of earlier days still waiting for a statement to list them."""
    rows = (
        await session.scalars(
            select(PendingMovement).where(
                PendingMovement.institution_id == institution_id,
                PendingMovement.at < start,
                or_(
                    PendingMovement.listed_run_id.is_(None),
                    PendingMovement.listed_run_id.in_(superseded_runs),
                ),
            )
        )
    ).all()
    instructions = [row.movement_id for row in rows if row.kind in _INSTRUCTION_KINDS]
    settled, failed = set(), set()
    if instructions:
        statuses = await session.execute(
            select(Instruction.id, Instruction.status).where(
                Instruction.institution_id == institution_id, Instruction.id.in_(instructions)
            )
        )
        for instruction_id, status in statuses:
            if status in (InstructionStatus.pending, InstructionStatus.sent):
                side.unsettled.add(instruction_id)
            elif status == InstructionStatus.failed:
                failed.add(instruction_id)  # it never left: nothing to wait for
            else:
                settled.add(instruction_id)
    for row in rows:
        if row.movement_id in failed:
            continue
        side.movements.append(
            Movement(
                id=row.movement_id,
                kind=MovementKind(row.kind),
                direction=Direction(row.direction),
                amount_fen=row.amount_fen,
                at=as_utc(row.at),
                bank_reference=row.bank_reference,
                reference=row.reference,
            )
        )
        side.carried.add(row.movement_id)
        if row.kind in _INSTRUCTION_KINDS and row.movement_id not in settled:
            side.outside_escrow.add(row.movement_id)


_INSTRUCTION_KINDS = (MovementKind.payout, MovementKind.refund)


async def _listed_ahead(
    session: AsyncSession, institution_id: UUID, start: datetime, superseded_runs: list[UUID]
) -> set[str]:
    """Movements of this day or later that an earlier day's statement listed already."""
    query = select(PendingMovement.movement_id).where(
        PendingMovement.institution_id == institution_id,
        PendingMovement.at >= start,
        PendingMovement.listed_run_id.is_not(None),
    )
    if superseded_runs:
        query = query.where(PendingMovement.listed_run_id.not_in(superseded_runs))
    return set((await session.scalars(query)).all())
