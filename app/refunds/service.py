"""Refunds (退费): asked for by the parent, answered by the institution within
`institution_refund_response_workdays` working days (silence is agreement), paid back by the
original route. Never blocked by the minimum balance, and allowed whatever the institution's state:
the money is the payer's. Asked for after the enrollment's `valid_until`, a refund is approved at
once: the institution has no say over money for days the payment no longer covers.

Approval reserves the money with a two-phase ledger transfer from the enrollment's prepaid account
to refund in transit, and writes the bank instruction, in one transaction.
"""

import uuid
from datetime import date, datetime
from functools import partial
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.balances.service import profile_of
from app.db.unit import Database
from app.enrollments.repository import locked_enrollments
from app.enrollments.rules import refundable_fen
from app.instructions.service import reserve_and_instruct
from app.kit.clock import utcnow
from app.kit.errors import NotFound
from app.kit.workdays import add_workdays, local_date
from app.ledger.books import enrollment_account
from app.models import Enrollment, Institution, Refund
from app.models.instruction import InstructionKind
from app.models.refund import RefundStatus
from app.refunds.errors import (
    NothingRefundable,
    RefundInProgress,
    RefundNotFound,
    RefundNotRequested,
)
from app.refunds.repository import OPEN_STATUSES

# Who approved a refund asked for after the enrollment's `valid_until`: the rule, not a person.
VALIDITY_ENDED = "validity_ended"
AUTO_APPROVE_BATCH = 200


async def _locked_enrollment(
    session: AsyncSession, institution_id: UUID, enrollment_id: UUID
) -> Enrollment:
    enrollment = (await locked_enrollments(session, institution_id, [enrollment_id])).get(
        enrollment_id
    )
    if enrollment is None:
        raise NotFound(f"no enrollment {enrollment_id}")
    return enrollment


async def request_refund(
    session: AsyncSession,
    institution_id: UUID,
    enrollment_id: UUID,
    reason: str,
    as_of: datetime,
) -> Refund:
    enrollment = await _locked_enrollment(session, institution_id, enrollment_id)
    open_refund = await session.scalar(
        select(Refund.id).where(
            Refund.institution_id == institution_id,
            Refund.enrollment_id == enrollment_id,
            Refund.status.in_(OPEN_STATUSES),
        )
    )
    if open_refund is not None:
        raise RefundInProgress(f"refund {open_refund} of this enrollment is still open")
    amount = refundable_fen(enrollment)
    if amount == 0:
        raise NothingRefundable("nothing paid is left unconsumed on this enrollment")
    institution = await session.get_one(Institution, institution_id)
    profile = await profile_of(session, institution)
    now = utcnow()
    refund = Refund(
        institution_id=institution_id,
        id=uuid.uuid4(),
        enrollment_id=enrollment_id,
        reason=reason,
        amount_fen=amount,
        status=RefundStatus.requested,
        respond_by=add_workdays(local_date(as_of), profile.institution_refund_response_workdays),
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    await session.flush()
    if local_date(as_of) > enrollment.valid_until:
        # What the payment covered has ended: the money left is the payer's without the
        # institution's say (rule 1), so the request is approved as it is made.
        return await approve_refund(session, institution_id, refund.id, decided_by=VALIDITY_ENDED)
    return refund


async def order_refund(
    session: AsyncSession,
    institution_id: UUID,
    enrollment_id: UUID,
    *,
    refund_id: UUID,
    reason: str,
    decided_by: str,
    wind_down_id: UUID | None,
    now: datetime,
) -> Refund:
    """A refund the regulator orders (a wind-down): made and approved at once, the institution
    having no say, and instructed like any approved refund. The caller holds the enrollment's lock
    and has checked something is refundable."""
    refund = Refund(
        institution_id=institution_id,
        id=refund_id,
        enrollment_id=enrollment_id,
        reason=reason,
        amount_fen=0,  # fixed at approval, below
        status=RefundStatus.requested,
        respond_by=local_date(now),
        wind_down_id=wind_down_id,
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    await session.flush()
    return await approve_refund(session, institution_id, refund_id, decided_by=decided_by)


async def get_refund(session: AsyncSession, institution_id: UUID, refund_id: UUID) -> Refund:
    refund = await session.scalar(
        select(Refund).where(Refund.institution_id == institution_id, Refund.id == refund_id)
    )
    if refund is None:
        raise RefundNotFound(f"no refund {refund_id}")
    return refund


async def _locked_requested(session: AsyncSession, institution_id: UUID, refund_id: UUID) -> Refund:
    """The refund, locked, while it awaits an answer. The row lock serialises the answers (the
    institution's approval or rejection, the auto-approval): the second waits for the first to
    commit, then reads the row afresh (app.db.locking) and is refused with refund_not_requested."""
    refund = await session.scalar(
        select(Refund)
        .where(Refund.institution_id == institution_id, Refund.id == refund_id)
        .with_for_update()
    )
    if refund is None:
        raise RefundNotFound(f"no refund {refund_id}")
    if refund.status != RefundStatus.requested:
        raise RefundNotRequested(f"refund {refund_id} is {refund.status}", status=refund.status)
    return refund


async def approve_refund(
    session: AsyncSession, institution_id: UUID, refund_id: UUID, decided_by: str
) -> Refund:
    """Pay back what is refundable now (lessons recorded since the request are not refunded)."""
    refund = await _locked_requested(session, institution_id, refund_id)
    enrollment = await _locked_enrollment(session, institution_id, refund.enrollment_id)
    amount = refundable_fen(enrollment)
    if amount == 0:
        raise NothingRefundable("lessons recorded since the request consumed what was refundable")
    prepaid = await enrollment_account(await session.connection(), institution_id, enrollment.id)
    # The original route: back to whoever paid, as the bank's notification of the payment named
    # them, and against that payment's references (each bank's spec says which it quotes). Where
    # the bank named no payer, the enrollment's payer is the name and the bank routes by reference.
    transfer, instruction = await reserve_and_instruct(
        session,
        institution_id,
        InstructionKind.refund,
        refund.id,
        prepaid.id,
        amount,
        payee_account_no=enrollment.payment_payer_account_no,
        payee_name=enrollment.payment_payer_name or enrollment.payer_name,
        bank_slug=await _bank_of(session, institution_id),
        memo=f"REFUND {enrollment.order_no}",
        order_no=enrollment.order_no,
        payment_reference=enrollment.payment_reference,
        payment_channel_order_id=enrollment.payment_channel_order_id,
    )
    now = utcnow()
    # The status stays as it is until the bank has paid the refund (app.instructions.outcomes).
    enrollment.refunded_fen += amount
    enrollment.updated_at = now
    refund.amount_fen = amount
    refund.status = RefundStatus.approved
    refund.decided_by = decided_by
    refund.transfer_id = transfer.id
    refund.instruction_id = instruction.id
    refund.updated_at = now
    await session.flush()
    return refund


async def _bank_of(session: AsyncSession, institution_id: UUID) -> str:
    slug = await session.scalar(
        select(Institution.bank_slug).where(Institution.id == institution_id)
    )
    assert slug is not None  # the refund's institution exists: its row holds the refund's key
    return slug


async def reject_refund(
    session: AsyncSession, institution_id: UUID, refund_id: UUID, reason: str
) -> Refund:
    refund = await _locked_requested(session, institution_id, refund_id)
    refund.status = RefundStatus.rejected
    refund.reject_reason = reason
    refund.decided_by = "institution"
    refund.updated_at = utcnow()
    await session.flush()
    return refund


async def auto_approve_refunds(db: Database, as_of: datetime) -> int:
    """Approve every request whose answer time has fully passed (respond_by before today), one
    transaction each. SKIP LOCKED lets two processes share the work; a refund another run approved
    is no longer requested and is skipped."""
    today = local_date(as_of)
    approved = 0
    while True:
        due = await db.run(partial(_due_refunds, today=today))
        if not due:
            return approved
        for institution_id, refund_id in due:
            approved += await db.run(
                partial(_auto_approve_one, institution_id=institution_id, refund_id=refund_id)
            )
        if len(due) < AUTO_APPROVE_BATCH:
            return approved


async def _due_refunds(session: AsyncSession, today: date) -> list[tuple[UUID, UUID]]:
    rows = await session.execute(
        select(Refund.institution_id, Refund.id)
        .where(Refund.status == RefundStatus.requested, Refund.respond_by < today)
        .order_by(Refund.respond_by, Refund.id)
        .limit(AUTO_APPROVE_BATCH)
    )
    return [(row.institution_id, row.id) for row in rows]


async def _auto_approve_one(session: AsyncSession, institution_id: UUID, refund_id: UUID) -> int:
    claimed = await session.scalar(
        select(Refund.id)
        .where(
            Refund.institution_id == institution_id,
            Refund.id == refund_id,
            Refund.status == RefundStatus.requested,
        )
        .with_for_update(skip_locked=True)
    )
    if claimed is None:
        return 0
    try:
        await approve_refund(session, institution_id, refund_id, decided_by="auto")
    except NothingRefundable:
        refund = await get_refund(session, institution_id, refund_id)
        refund.status = RefundStatus.rejected
        refund.reject_reason = "nothing was refundable any more when the answer time ran out"
        refund.decided_by = "auto"
        return 0
    return 1
