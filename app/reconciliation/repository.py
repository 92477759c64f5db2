"""The ledger's side of a statement: the movements of an institution's escrow account on a day."""

from datetime import date, datetime, time, timedelta
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.banks.protocol import Direction
from app.kit.clock import SHANGHAI, as_utc
from app.models import Enrollment, Instruction, SuspenseItem
from app.models.instruction import InstructionKind, InstructionStatus
from app.reconciliation.matching import Movement, MovementKind

# Instructions the bank has, or had: they leave the account once each.
SENT = (InstructionStatus.sent, InstructionStatus.succeeded, InstructionStatus.returned)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The business day, Asia/Shanghai, as [start, end)."""
    start = datetime.combine(day, time(0), SHANGHAI)
    return start, start + timedelta(days=1)


async def movements_of_day(
    session: AsyncSession, institution_id: UUID, day: date
) -> list[Movement]:
    """What the ledger says moved through the escrow account on `day`: payments credited (to an
    enrollment or to suspense) by their bank serial and order, payouts and refunds sent, and the
    money of returned ones come back."""
    start, end = day_bounds(day)
    movements: list[Movement] = []
    paid = await session.execute(
        select(
            Enrollment.id,
            Enrollment.paid_fen,
            Enrollment.paid_at,
            Enrollment.payment_reference,
            Enrollment.order_no,
        ).where(
            Enrollment.institution_id == institution_id,
            Enrollment.paid_at >= start,
            Enrollment.paid_at < end,
        )
    )
    movements.extend(
        Movement(
            id=f"payment:{row.id}",
            kind=MovementKind.payment,
            direction=Direction.credit,
            amount_fen=row.paid_fen,
            at=as_utc(row.paid_at),
            bank_reference=row.payment_reference,
            reference=row.order_no,
        )
        for row in paid
    )
    held = await session.scalars(
        select(SuspenseItem).where(
            SuspenseItem.institution_id == institution_id,
            SuspenseItem.received_at >= start,
            SuspenseItem.received_at < end,
        )
    )
    movements.extend(
        Movement(
            id=f"suspense:{item.id}",
            kind=MovementKind.payment,
            direction=Direction.credit,
            amount_fen=item.amount_fen,
            at=as_utc(item.received_at),
            bank_reference=item.bank_reference,
            reference=item.order_no,
        )
        for item in held
    )
    sent = await session.scalars(
        select(Instruction).where(
            Instruction.institution_id == institution_id,
            Instruction.status.in_(SENT),
            Instruction.sent_at >= start,
            Instruction.sent_at < end,
        )
    )
    for instruction in sent:
        movements.append(
            Movement(
                id=instruction.id,
                kind=MovementKind.payout
                if instruction.kind == InstructionKind.payout
                else MovementKind.refund,
                direction=Direction.debit,
                amount_fen=instruction.amount_fen,
                at=as_utc(instruction.sent_at or instruction.created_at),
                bank_reference=None,
                reference=instruction.id,
            )
        )
    returned = await session.scalars(
        select(Instruction).where(
            Instruction.institution_id == institution_id,
            Instruction.status == InstructionStatus.returned,
            Instruction.resolved_at >= start,
            Instruction.resolved_at < end,
        )
    )
    movements.extend(
        Movement(
            id=f"return:{instruction.id}",
            kind=MovementKind.returned,
            direction=Direction.credit,
            amount_fen=instruction.amount_fen,
            at=as_utc(instruction.resolved_at or instruction.created_at),
            bank_reference=None,
            reference=instruction.id,
        )
        for instruction in returned
    )
    return movements
