"""The request or job owns the transaction: endpoints and jobs hand their work to `Database.run`,
which gives it an ORM session on one connection and commits once when it returns. Services and
repositories never commit.

Two owners:
- a job (or a request without an `Idempotency-Key`) gets one transaction per `run`, retried whole
  on serialisation failures and deadlocks;
- a request with an `Idempotency-Key` gets one transaction for the whole request
  (`RequestTransaction`): every `run` of its handler joins it, and the idempotency layer writes the
  response for replay into it before the one COMMIT, so a committed change always has its recorded
  response and an uncommitted one never holds its key. A retryable error then goes up to the
  idempotency layer, which runs the whole request again.

The ledger works on the same connection (`await session.connection()`), so a business row and its
journal entry commit together or not at all.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.config import Settings, get_settings
from app.db.engine import read_only_options
from app.db.locking import LockingSession
from app.db.transaction import run_in_transaction, run_without_transaction

T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[T]]

REQUEST_TRANSACTION = "request_transaction"  # its name in the request's state


class RequestTransaction:
    """One connection and one transaction, begun when first needed and ended by its owner."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._connection: AsyncConnection | None = None

    @property
    def begun(self) -> bool:
        return self._connection is not None

    async def connection(self) -> AsyncConnection:
        if self._connection is None:
            connection = await self.engine.connect()
            try:
                await connection.begin()
            except BaseException:
                await connection.close()
                raise
            self._connection = connection
        return self._connection

    async def commit(self) -> None:
        if self._connection is not None:
            await self._connection.commit()

    async def close(self) -> None:
        """Roll back whatever was not committed and give the connection back."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()


async def _in_session(connection: AsyncConnection, work: Work[T]) -> T:
    # The session works inside the owner's transaction: its commit only flushes, and the
    # transaction itself commits where its owner says (no savepoint round trips).
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


class Database:
    """Units of work on `engine`. It carries the settings too, so that jobs, which get only the
    database and a moment, can reach what is configured (bank keys are sealed under SECRET_KEY)."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings | None = None,
        request_transaction: RequestTransaction | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings if settings is not None else get_settings()
        self.request_transaction = request_transaction

    async def run(self, work: Work[T]) -> T:
        """Run `work` in one transaction; commit when it returns, roll back when it raises. Inside
        a request's own transaction, `work` joins it and its owner commits."""
        if self.request_transaction is not None:
            return await _in_session(await self.request_transaction.connection(), work)
        return await run_in_transaction(
            self.engine, lambda connection: _in_session(connection, work)
        )

    async def read(self, work: Work[T]) -> T:
        """Run read-only `work` without a transaction of its own: no BEGIN and COMMIT round trips
        on PostgreSQL, where each statement then reads what was committed when it began (as it
        would in a READ COMMITTED transaction), and a reader's deferred BEGIN on SQLite instead of
        the writer's lock. Inside a request's own transaction, `work` joins it."""
        if self.request_transaction is not None:
            return await _in_session(await self.request_transaction.connection(), work)
        return await run_without_transaction(
            self.engine,
            lambda connection: _in_session(connection, work),
            read_only_options(self.engine),
        )

    def for_jobs(self) -> "Database":
        """Units of work of their own: a job commits as it goes (it claims, calls a bank, then
        records), so it never joins a request's transaction."""
        return Database(self.engine, self.settings)


async def get_database(request: Request) -> Database:
    # async: FastAPI would run a plain function in a worker thread, a thread hop per request.
    return Database(
        request.app.state.engine,
        request.app.state.settings,
        getattr(request.state, REQUEST_TRANSACTION, None),
    )


Db = Annotated[Database, Depends(get_database)]


async def get_read_database(request: Request) -> Database:
    """The regulator's reads, on the replica when READ_DATABASE_URL is set (else the primary).
    A replica has no request transaction to join: each `run` is a read-only transaction of its
    own there."""
    return Database(request.app.state.read_engine, request.app.state.settings)


ReadDb = Annotated[Database, Depends(get_read_database)]
