"""Payouts (拨付): releasable money to the institution's basic account, on request or by the daily
release job, never taking the escrow balance below the required balance R.

Each payout reserves its money with a two-phase ledger transfer (releasable to payout in transit)
and writes its bank instruction to the outbox, in the same transaction; the dispatch job sends it
and the bank's result posts or voids the transfer. Locks, in this order: the institution's row, so
a freeze, a blacklisting or a new alert level decided meanwhile is either seen or waits for the
payout; then the institution's ledger, so two payouts can never both fit the same headroom. Under
both, the alert engine evaluates the institution (its figures, the day's outflows, the lesson
spike): every money movement that can raise an alert takes the same two locks in the same order,
so one committed before the payout is seen by it, and one committed after it waits for it.
"""

import uuid
from datetime import date, datetime
from functools import partial
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import engine, levels
from app.balances.rules import Figures
from app.balances.service import figures
from app.db.unit import Database
from app.institutions.standing import PAYOUT_STOPPING_LEVELS, stopped_because
from app.instructions.service import reserve_and_instruct
from app.jurisdictions.profile import RuleProfile
from app.kit.clock import utcnow
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
    MonthlyCapReached,
    NothingReleasable,
    PayoutRefused,
    PayoutsSuspended,
)


def checked_amount(view: Figures, amount_fen: int | None) -> int:
    """The payout the rule allows: `amount_fen` (positive, as the request schema requires), or the
    allowance when it is None. A refusal names the limit that stops it, in this order, and carries
    the figures:

    - `nothing_releasable`: the allowance is 0 (no released money payable yet, or B already at or
      below what R, the money in transit and in suspense need), unless the month's cap is what is
      used up;
    - `monthly_cap_reached`: this month's payouts have reached the cap, or `amount_fen` is more
      than the cap leaves;
    - `amount_exceeds_releasable`: `amount_fen` is more than the released money payable now;
    - `min_balance_violation`: paying `amount_fen` would take the balance below R.
    """
    shown = view.named() | ({} if amount_fen is None else {"requested_fen": amount_fen})
    cap_left = view.monthly_cap_left_fen
    if view.payout_allowance_fen == 0:
        if view.releasable_fen > 0 and cap_left is not None and cap_left <= 0:
            raise MonthlyCapReached(
                f"this month's payouts ({view.month_payouts_fen} fen) have reached the cap of "
                f"{view.monthly_cap_multiple} * F = {view.month_payouts_fen + cap_left} fen",
                **shown,
            )
        if view.releasable_fen <= 0:
            raise NothingReleasable("no released lesson money is payable yet", **shown)
        raise NothingReleasable(
            f"the balance leaves no room above the required balance R = U + H + F = "
            f"{view.unconsumed_fen} + {view.holdback_fen} + {view.floor_fen} = "
            f"{view.required_fen} fen (headroom {view.headroom_fen} fen)",
            **shown,
        )
    amount = view.payout_allowance_fen if amount_fen is None else amount_fen
    if amount > view.releasable_fen:
        raise AmountExceedsReleasable(
            f"{amount} fen asked, {view.releasable_fen} fen releasable", **shown
        )
    if cap_left is not None and amount > cap_left:
        raise MonthlyCapReached(
            f"{amount} fen asked; this month's payouts may add up to {cap_left} fen more",
            **shown,
        )
    if amount > view.headroom_fen:
        raise MinBalanceViolation(
            f"paying {amount} fen would take the balance {amount - view.headroom_fen} fen below the "
            f"required balance R = U + H + F = {view.unconsumed_fen} + {view.holdback_fen} + "
            f"{view.floor_fen} = {view.required_fen} fen",
            **shown,
        )
    return amount


async def create_payout(
    session: AsyncSession,
    institution_id: UUID,
    amount_fen: int | None,
    trigger: str,
    as_of: datetime,
    *,
    actor: str | None = None,
) -> Payout:
    """`actor`: who asks ("institution:<key id>"), recorded with a level change the payout's
    evaluation makes; the institution itself when None."""
    institution, profile = await levels.lock(session, institution_id)
    return await _pay(
        session,
        institution,
        profile,
        amount_fen,
        trigger,
        as_of,
        actor or f"institution:{institution_id}",
    )


async def evaluate_before_payout(
    session: AsyncSession, institution_id: UUID, as_of: datetime, *, actor: str
) -> None:
    """The alert engine's evaluation a payout request makes first, in a unit of work of its own:
    an alert it opens stays recorded even when the payout, refused for it, rolls back. The payout
    evaluates again under its locks (`_pay`), so nothing slips between the two."""
    await engine.evaluate(session, institution_id, as_of, cause="payout requested", actor=actor)


async def _pay(
    session: AsyncSession,
    institution: Institution,
    profile: RuleProfile,
    amount_fen: int | None,
    trigger: str,
    as_of: datetime,
    actor: str,
) -> Payout:
    """Pay out of the institution, whose row the caller has locked: the ledger's lock, then the
    alert engine's evaluation (so a cause committed before is seen, and one committed after waits
    for this payout), then the standing and the rule."""
    connection = await session.connection()
    await ledger.lock(connection, institution.id)
    await engine.evaluate_locked(
        session, institution, profile, as_of, cause=f"payout ({trigger})", actor=actor
    )
    view = await figures(session, institution, profile, as_of)
    reason = stopped_because(institution, PAYOUT_STOPPING_LEVELS)
    if reason is not None:
        raise PayoutsSuspended(
            f"payouts are suspended: {reason}",
            alert_level=institution.alert_level,
            **view.named(),
        )
    amount = checked_amount(view, amount_fen)
    payout_id = uuid.uuid4()
    books = await institution_books(connection, institution.id)
    transfer, instruction = await reserve_and_instruct(
        session,
        institution.id,
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
        institution_id=institution.id,
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
    # The payout itself may be the large outflow, or the one that takes the day over its share:
    # its alert opens with it, and the next payout is suspended.
    await engine.evaluate_outflows(
        session, institution, profile, as_of, cause=f"payout {payout_id}", actor=actor
    )
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
    locked = await levels.lock(session, institution_id, skip_locked=True)
    already = await session.scalar(
        select(Payout.id).where(
            Payout.institution_id == institution_id,
            Payout.trigger == "release_job",
            Payout.business_date == local_date(as_of),
        )
    )
    if locked is None or already is not None:
        return 0
    institution, profile = locked
    try:
        await _pay(session, institution, profile, None, "release_job", as_of, "job:release_payouts")
    except PayoutRefused:
        return 0  # nothing to pay today; the balance view says why
    return 1
