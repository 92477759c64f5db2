"""What the bank says became of an instruction, applied once.

Results come from three places (a pushed result, a statement or a notification of a return, the
poll job's query), in any order and any number of times. Each is applied under the instruction's row
lock, from its current status:

    pending/sent --settled--> succeeded   post the transfer: in transit -> escrow cash
    pending/sent --failed---> failed      void the transfer: in transit -> back to its source
    pending/sent --returned-> returned    void the transfer (it left and came back before we knew)
    succeeded ----returned--> returned    a reversing entry: escrow cash <- its source (退票)

A result that repeats the current status changes nothing; one that contradicts a final status
(failed after succeeded, settled after returned...) changes nothing and raises an alert. Money goes
back where it came from: a payout's to releasable, a refund's to the enrollment's prepaid account
(and the enrollment's refunded amount is reduced again).

Lock order: the institution's row, the instruction, then the refund's enrollment, then the ledger
(as lessons and refunds take enrollment before ledger, and payouts the institution before the
ledger). Money that left or came back re-evaluates the institution's balance triggers (the alert
engine) in the same transaction.
"""

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import engine, levels
from app.alerts.service import raise_alert
from app.enrollments.repository import locked_enrollments
from app.kit.clock import utcnow
from app.kit.money import yuan
from app.ledger import service as ledger
from app.ledger.books import institution_books
from app.ledger.types import EntryDraft
from app.models import Enrollment, Instruction, Payout, Refund
from app.models.alert import AlertKind
from app.models.enrollment import EnrollmentStatus
from app.models.institution import AlertLevel
from app.models.instruction import InstructionKind, InstructionStatus, ResultStatus
from app.models.payout import PayoutStatus
from app.models.reconciliation import BreakType
from app.models.refund import RefundStatus
from app.reconciliation import breaks

OPEN = (InstructionStatus.pending, InstructionStatus.sent)


class Applied(StrEnum):
    changed = "changed"
    unchanged = "unchanged"  # the instruction already had this outcome, or it is still pending
    conflicting = "conflicting"  # contradicts a final outcome: alert raised, nothing moved
    unknown = "unknown"  # no such instruction


@dataclass(frozen=True, slots=True)
class Outcome:
    status: ResultStatus
    reason: str | None = None
    bank_code: str | None = None


async def locked_instruction(session: AsyncSession, instruction_id: str) -> Instruction | None:
    """The instruction under its row lock, taken after its institution's: an outcome moves the
    institution's money and may move its alert level, and the institution's row comes before
    everything else of it (the payout's lock order)."""
    institution_id = await session.scalar(
        select(Instruction.institution_id).where(Instruction.id == instruction_id)
    )
    if institution_id is None:
        return None
    await levels.lock(session, institution_id)
    return await session.scalar(
        select(Instruction).where(Instruction.id == instruction_id).with_for_update()
    )


async def apply_outcome(session: AsyncSession, instruction_id: str, outcome: Outcome) -> Applied:
    instruction = await locked_instruction(session, instruction_id)
    if instruction is None:
        return Applied.unknown
    return await apply_to(session, instruction, outcome)


async def apply_to(session: AsyncSession, instruction: Instruction, outcome: Outcome) -> Applied:
    """Apply `outcome` to an instruction whose row the caller has locked."""
    current = InstructionStatus(instruction.status)
    if outcome.bank_code is not None:
        instruction.bank_code = outcome.bank_code[:40]
    if outcome.status is ResultStatus.pending:
        if current is InstructionStatus.pending:
            await _mark(session, instruction, InstructionStatus.sent)
            return Applied.changed
        return Applied.unchanged
    if outcome.status is ResultStatus.settled and current in OPEN:
        await _settle(session, instruction)
        await _evaluate(session, instruction, outcome)
        return Applied.changed
    if outcome.status is ResultStatus.failed and current in OPEN:
        await _give_back(session, instruction, InstructionStatus.failed, outcome.reason)
        # A statement that did not list it was right: the money never left.
        await breaks.close(
            session,
            await breaks.open_breaks(
                session,
                instruction.institution_id,
                types=[BreakType.missing_at_bank],
                movement_id=instruction.id,
            ),
            by="bank result",
            note=f"the bank failed {instruction.kind} {instruction.id}: the money never left",
            now=utcnow(),
        )
        await _evaluate(session, instruction, outcome)
        return Applied.changed
    if outcome.status is ResultStatus.returned and current in (*OPEN, InstructionStatus.succeeded):
        await _give_back(session, instruction, InstructionStatus.returned, outcome.reason)
        await _evaluate(session, instruction, outcome)
        return Applied.changed
    if _same(current, outcome.status):
        return Applied.unchanged
    await raise_alert(
        session,
        instruction.institution_id,
        AlertKind.conflicting_result,
        AlertLevel.red,
        key=f"{instruction.id}:{outcome.status}",
        actor=f"bank:{instruction.bank_slug}",
        reason=(
            f"the bank reports {instruction.kind} {instruction.id} {outcome.status}, but it is "
            f"already {current}; nothing was moved"
        ),
    )
    return Applied.conflicting


async def _evaluate(session: AsyncSession, instruction: Instruction, outcome: Outcome) -> None:
    """Money left or came back: the balance triggers, in this transaction."""
    await engine.evaluate_money(
        session,
        instruction.institution_id,
        utcnow(),
        cause=f"{instruction.kind} {instruction.id} {outcome.status}",
        actor=f"bank:{instruction.bank_slug}",
    )


def _same(current: InstructionStatus, status: ResultStatus) -> bool:
    return (current, status) in {
        (InstructionStatus.succeeded, ResultStatus.settled),
        (InstructionStatus.failed, ResultStatus.failed),
        (InstructionStatus.returned, ResultStatus.returned),
        # A late "settled" for money that already came back tells us nothing new.
        (InstructionStatus.returned, ResultStatus.settled),
    }


async def _settle(session: AsyncSession, instruction: Instruction) -> None:
    enrollment = await _refund_enrollment(session, instruction)
    if enrollment is not None:
        # Only now has the payer the money back: until then the enrollment showed `active`.
        enrollment.status = EnrollmentStatus.refunded
        enrollment.updated_at = utcnow()
    connection = await session.connection()
    await ledger.post_transfer(
        connection,
        instruction.institution_id,
        instruction.transfer_id,
        f"{instruction.kind}_settled",
    )
    await _mark(session, instruction, InstructionStatus.succeeded)


async def _give_back(
    session: AsyncSession,
    instruction: Instruction,
    status: InstructionStatus,
    reason: str | None,
) -> None:
    """The money did not leave, or came back: return it to where it came from."""
    succeeded = instruction.status == InstructionStatus.succeeded
    enrollment = await _refund_enrollment(session, instruction)
    connection = await session.connection()
    if succeeded:
        transfer = await ledger.transfer(
            connection, instruction.institution_id, instruction.transfer_id
        )
        books = await institution_books(connection, instruction.institution_id)
        await ledger.post(
            connection,
            instruction.institution_id,
            EntryDraft.transfer(
                f"returned:{instruction.id}",
                f"{instruction.kind}_returned",
                books.escrow_cash.id,
                transfer.source_account_id,
                instruction.amount_fen,
                memo=f"returned by the bank: {reason or 'no reason given'}"[:500],
            ),
        )
    else:
        await ledger.void_transfer(
            connection,
            instruction.institution_id,
            instruction.transfer_id,
            f"{instruction.kind}_{'returned' if status is InstructionStatus.returned else 'failed'}",
        )
    if enrollment is not None:
        enrollment.refunded_fen -= instruction.amount_fen
        # Back to what it was: a refund not paid left it `active`; one paid and returned (退票)
        # made it `refunded`, which holds only while an earlier refund stays paid.
        if succeeded and enrollment.refunded_fen == 0:
            enrollment.status = EnrollmentStatus.active
        enrollment.updated_at = utcnow()
    instruction.detail = reason[:500] if reason else instruction.detail
    await _mark(session, instruction, status)
    returned = status is InstructionStatus.returned
    await raise_alert(
        session,
        instruction.institution_id,
        AlertKind.returned_payment if returned else AlertKind.instruction_failed,
        AlertLevel.yellow,
        key=instruction.id,
        actor=f"bank:{instruction.bank_slug}",
        reason=(
            f"{instruction.kind} {instruction.id} of {yuan(instruction.amount_fen)} yuan "
            f"{'came back (退票)' if returned else 'failed'}: {reason or 'no reason given'}; "
            f"the money is back in {'releasable' if instruction.kind == InstructionKind.payout else 'the enrollment'}"
        ),
    )


async def _refund_enrollment(session: AsyncSession, instruction: Instruction) -> Enrollment | None:
    if instruction.kind != InstructionKind.refund:
        return None
    enrollment_id = await session.scalar(
        select(Refund.enrollment_id).where(
            Refund.institution_id == instruction.institution_id,
            Refund.instruction_id == instruction.id,
        )
    )
    if enrollment_id is None:
        return None
    locked = await locked_enrollments(session, instruction.institution_id, [enrollment_id])
    return locked[enrollment_id]


_PAYOUT_STATUS = {
    InstructionStatus.sent: PayoutStatus.sent,
    InstructionStatus.succeeded: PayoutStatus.settled,
    InstructionStatus.failed: PayoutStatus.failed,
    InstructionStatus.returned: PayoutStatus.returned,
}
_REFUND_STATUS = {
    InstructionStatus.sent: RefundStatus.sent,
    InstructionStatus.succeeded: RefundStatus.settled,
    InstructionStatus.failed: RefundStatus.failed,
    InstructionStatus.returned: RefundStatus.returned,
}


async def _mark(session: AsyncSession, instruction: Instruction, status: InstructionStatus) -> None:
    """Move the instruction and the payout or refund it pays to `status`."""
    now = utcnow()
    instruction.status = status
    if status is InstructionStatus.sent:
        instruction.sent_at = instruction.sent_at or now
    else:
        instruction.resolved_at = now
    paid: type[Payout] | type[Refund] = Payout
    new: str = _PAYOUT_STATUS[status]
    if instruction.kind == InstructionKind.refund:
        paid, new = Refund, _REFUND_STATUS[status]
    await session.execute(
        update(paid)
        .where(paid.institution_id == instruction.institution_id)
        .where(paid.instruction_id == instruction.id)
        .values(status=new, updated_at=now)
    )
    await session.flush()
