"""A payout and a cause of RED racing on PostgreSQL, each on its own connection, many rounds: the
payout never leaves once the cause is committed. The cause is what a bank statement does (the
institution's row, a lower bank balance, the balance triggers in the same transaction); the
payout takes the institution's row, the ledger, and evaluates under both."""

import asyncio

import pytest

from app.alerts import engine as alert_engine
from app.alerts import levels
from app.db.unit import Database
from app.kit.clock import utcnow
from app.payouts.errors import PayoutsSuspended
from app.payouts.service import create_payout
from tests.factories import make_paid_enrollment, make_world

ROUNDS = 25


async def _round(engine) -> str:
    """One race on a new institution: whether the payout went first or was refused."""
    world = await make_world(engine, release_lag_days=0)
    # B = 100,000; 5 lessons released: U = 50,000, 50,000 releasable.
    await make_paid_enrollment(engine, world, lessons=10, released=5)
    institution_id = world.institution_id

    async def cause(session):
        institution, _ = await levels.lock(session, institution_id)
        now = utcnow()
        institution.bank_balance_fen = 49_999  # B < U: a shortfall
        institution.bank_balance_as_of = now
        await session.flush()
        await alert_engine.evaluate_money(
            session, institution_id, now, cause="statement", actor="bank:test"
        )
        return now

    async def pay(session):
        try:
            return await create_payout(session, institution_id, 10_000, "request", utcnow())
        except PayoutsSuspended:
            return None

    db = Database(engine)
    caused_at, payout = await asyncio.gather(db.run(cause), db.run(pay))
    level = await db.run(lambda s: alert_engine.level_as_of(s, institution_id, utcnow()))
    assert level == "RED"
    if payout is None:
        return "refused"
    # It took the institution's row before the cause did: it left before the cause.
    assert payout.created_at < caused_at
    return "paid first"


@pytest.mark.postgres_only
async def test_a_payout_never_leaves_once_its_cause_is_committed(engine):
    outcomes = [await _round(engine) for _ in range(ROUNDS)]
    assert len(outcomes) == ROUNDS
