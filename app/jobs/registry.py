"""The scheduled jobs, by the names API.md gives them. Each takes the database and the moment it
runs for, does its work in transactions of its own, and returns how many things it handled. Every
job is safe to run twice and on two processes at once."""

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import engine as alert_engine
from app.banks.crediting import process_inbox
from app.banks.outbox import dispatch_instructions, poll_instructions
from app.complaints.service import settle_aged_bursts
from app.db.transaction import run_in_transaction
from app.db.unit import Database
from app.enrollments.service import expire_unpaid_enrollments
from app.idempotency.repository import purge_expired
from app.ledger import service as ledger
from app.lessons.service import auto_confirm_lessons
from app.payouts.service import release_payouts
from app.reconciliation.watch import watch_reconciliation
from app.refunds.service import auto_approve_refunds
from app.winddown.service import resume_wind_downs

Job = Callable[[Database, datetime], Awaitable[int]]
Batch = Callable[[AsyncSession, datetime], Awaitable[int]]


def in_batches(batch: Batch) -> Job:
    """A job from a function that handles one batch in one transaction: run it until it finds
    nothing left to do."""

    async def job(db: Database, as_of: datetime) -> int:
        total = 0
        while handled := await db.run(lambda session: batch(session, as_of)):
            total += handled
        return total

    return job


async def purge_idempotency_records(db: Database, as_of: datetime) -> int:
    """Replay records past their TTL: nothing may replay them any more."""
    return await run_in_transaction(db.engine, lambda connection: purge_expired(connection, as_of))


async def checkpoint_ledgers(db: Database, as_of: datetime) -> int:
    """Publish every institution's journal head as its checkpoint of the day, once per day."""
    return await run_in_transaction(
        db.engine, lambda connection: ledger.checkpoint(connection, as_of)
    )


async def evaluate_alerts(db: Database, as_of: datetime) -> int:
    """Every institution's triggers (the alert engine), after closing the complaint bursts that
    have aged out of their window."""
    await settle_aged_bursts(db, as_of)
    return await alert_engine.evaluate_alerts(db, as_of)


JOBS: dict[str, Job] = {
    "auto_confirm_lessons": in_batches(auto_confirm_lessons),
    "auto_approve_refunds": auto_approve_refunds,
    "expire_enrollments": in_batches(expire_unpaid_enrollments),
    "release_payouts": release_payouts,
    "dispatch_instructions": dispatch_instructions,
    "poll_instructions": poll_instructions,
    "process_inbox": process_inbox,
    "purge_idempotency_records": purge_idempotency_records,
    "checkpoint_ledgers": checkpoint_ledgers,
    "watch_reconciliation": watch_reconciliation,
    "resume_wind_downs": resume_wind_downs,
    "evaluate_alerts": evaluate_alerts,
}
