"""Payouts (拨付): releasable money to the institution's basic account, on request or by the daily
release job, never taking the escrow balance below the required balance R.

Each payout reserves its money with a two-phase ledger transfer (releasable to payout in transit)
and writes its bank instruction to the outbox, in the same transaction; the dispatch job sends it
and the bank's result posts or voids the transfer. The check and the reservation run under the
institution's ledger lock, so two payouts can never both fit the same headroom.
"""

import uuid
from dataclasses import asdict
from datetime import date, datetime
from functools import partial
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.balances.rules import Figures
from app.balances.service import figures, profile_of
from app.db.unit import Database
from app.institutions.standing import PAYOUT_STOPPING_LEVELS, stopped_because
from app.instructions.service import reserve_and_instruct
from app.kit.clock import utcnow
from app.kit.errors import NotFound
from app.kit.workdays import local_date
from app.ledger import service as ledger
from app.ledger.books import institution_books
from app.models import Institution, Payout
from app.models.institution import InstitutionStatus
from app.models.instruction import InstructionKind
from app.models.payout import PayoutStatus
from app.payouts.errors import (
    AmountExceedsReleasable,
    MinBalanceViolation,
    MonthlyPayoutCapExceeded,
    NothingReleasable,
    PayoutsSuspended,
)


class PayoutNotFound(NotFound):
    code = "payout_not_found"


def checked_amount(view: Figures, amount_fen: int | None) -> int:
    """The payout the rule allows: `amount_fen`, or the most allowed when it is None. Refusals carry
    the figures, so the institution sees why."""
    shown = {k: v for k, v in asdict(view).items() if k != "monthly_cap_multiple"}
    shown |= {
        "required_fen": view.required_fen,
        "headroom_fen": view.headroom_fen,
        "balance_fen": view.balance_fen,
    }
    if view.releasable_fen <= 0:
        raise NothingReleasable("no confirmed lesson money is releasable yet", **shown)
    amount = view.payout_allowance_fen if amount_fen is None else amount_fen
    if amount > view.releasable_fen:
        raise AmountExceedsReleasable(
            f"{amount} fen asked, {view.releasable_fen} fen releasable", **shown
        )
    if amount <= 0 or amount > view.headroom_fen:
        raise MinBalanceViolation(
            f"paying {amount} fen would leave {view.headroom_fen - amount} fen above the required "
            f"balance R = U + H + F = {view.unconsumed_fen} + {view.holdback_fen} + "
            f"{view.floor_fen} = {view.required_fen} fen",
            requested_fen=amount,
            **shown,
        )
    cap_left = view.monthly_cap_left_fen
    if cap_left is not None and amount > cap_left:
        raise MonthlyPayoutCapExceeded(
            f"this month's payouts may add up to {cap_left} fen more",
            requested_fen=amount,
            **shown,
        )
    return amount


async def create_payout(
    session: AsyncSession,
    institution_id: UUID,
    amount_fen: int | None,
    trigger: str,
    as_of: datetime,
) -> Payout:
    institution = await session.get_one(Institution, institution_id)
    reason = stopped_because(institution, PAYOUT_STOPPING_LEVELS)
    if reason is not None:
        raise PayoutsSuspended(
            f"payouts are suspended: {reason}", alert_level=institution.alert_level
        )
    connection = await session.connection()
    await ledger.lock(connection, institution_id)
    amount = checked_amount(
        await figures(session, institution, await profile_of(session, institution), as_of),
        amount_fen,
    )
    payout_id = uuid.uuid4()
    books = await institution_books(connection, institution_id)
    transfer, instruction = await reserve_and_instruct(
        session,
        institution_id,
        InstructionKind.payout,
        payout_id,
        books.releasable.id,
        amount,
        payee_account_no=institution.basic_account_no,
        payee_name=institution.basic_account_name,
        bank_slug=institution.bank_slug,
        memo="PAYOUT",
    )
    now = utcnow()
    payout = Payout(
        institution_id=institution_id,
        id=payout_id,
        amount_fen=amount,
        status=PayoutStatus.pending,
        trigger=trigger,
        business_date=local_date(as_of),
        transfer_id=transfer.id,
        instruction_id=instruction.id,
        created_at=now,
        updated_at=now,
    )
    session.add(payout)
    await session.flush()
    return payout


async def release_payouts(db: Database, as_of: datetime) -> int:
    """The daily T+1 release: pay each active institution the most the rule allows, once per
    business date, one transaction per institution. Returns how many payouts it made. Safe to run
    twice (an institution the job already paid on that date is skipped) and on two processes at
    once (an institution being released elsewhere is skipped, SKIP LOCKED)."""
    institution_ids = await db.run(
        lambda session: _institutions_to_release(session, local_date(as_of))
    )
    made = 0
    for institution_id in institution_ids:
        made += await db.run(partial(_release_one, institution_id=institution_id, as_of=as_of))
    return made


async def _institutions_to_release(session: AsyncSession, business_date: date) -> list[UUID]:
    paid = select(Payout.institution_id).where(
        Payout.trigger == "release_job", Payout.business_date == business_date
    )
    rows = await session.scalars(
        select(Institution.id)
        .where(Institution.status == InstitutionStatus.active, Institution.id.not_in(paid))
        .order_by(Institution.id)
    )
    return list(rows)


async def _release_one(session: AsyncSession, institution_id: UUID, as_of: datetime) -> int:
    claimed = await session.scalar(
        select(Institution.id)
        .where(Institution.id == institution_id)
        .with_for_update(skip_locked=True)
    )
    already = await session.scalar(
        select(Payout.id).where(
            Payout.institution_id == institution_id,
            Payout.trigger == "release_job",
            Payout.business_date == local_date(as_of),
        )
    )
    if claimed is None or already is not None:
        return 0
    try:
        await create_payout(session, institution_id, None, "release_job", as_of)
    except (PayoutsSuspended, NothingReleasable, MinBalanceViolation, MonthlyPayoutCapExceeded):
        return 0  # nothing to pay today; the balance view says why
    return 1
