"""The request or job owns the transaction: endpoints and jobs hand their work to `Database.run`,
which gives it an ORM session on one connection, retries it whole on serialisation failures and
deadlocks, and commits once when it returns. Services and repositories never commit.

The ledger works on the same connection (`await session.connection()`), so a business row and its
journal entry commit together or not at all.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.config import Settings, get_settings
from app.db.locking import LockingSession
from app.db.transaction import run_in_transaction

T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[T]]


class Database:
    """Units of work on `engine`. It carries the settings too, so that jobs, which get only the
    database and a moment, can reach what is configured (bank keys are sealed under SECRET_KEY)."""

    def __init__(self, engine: AsyncEngine, settings: Settings | None = None) -> None:
        self.engine = engine
        self.settings = settings if settings is not None else get_settings()

    async def run(self, work: Work[T]) -> T:
        """Run `work` in one transaction; commit when it returns, roll back when it raises."""

        async def in_session(connection: AsyncConnection) -> T:
            # The session works inside the unit's transaction: its commit only flushes, and the
            # transaction itself commits in run_in_transaction (no savepoint round trips).
            session = AsyncSession(
                bind=connection,
                expire_on_commit=False,
                join_transaction_mode="rollback_only",
                sync_session_class=LockingSession,
            )
            try:
                result = await work(session)
                await session.commit()
                return result
            finally:
                await session.close()

        return await run_in_transaction(self.engine, in_session)


async def get_database(request: Request) -> Database:
    # async: FastAPI would run a plain function in a worker thread, a thread hop per request.
    return Database(request.app.state.engine, request.app.state.settings)


Db = Annotated[Database, Depends(get_database)]
