"""The unit of work owns the transaction, and is retried whole when the database says so.

PostgreSQL reports serialisation failures (40001) and deadlocks (40P01); both mean "nothing was
written, try again". A unit of work is a coroutine taking a connection; it must not commit, and it is
run again from the start, in a new transaction, on such an error. Anything else propagates.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db.engine import StatementProgress

T = TypeVar("T")

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
MAX_ATTEMPTS = 8


class RetryTransaction(Exception):
    """Raised by a unit of work that found the ground moved (e.g. a lost idempotency race)."""


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a driver error, looking through SQLAlchemy's and asyncpg's wrappers."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for attribute in ("sqlstate", "pgcode"):
            value = getattr(current, attribute, None)
            if isinstance(value, str):
                return value
        current = getattr(current, "orig", None) or current.__cause__
    return None


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, RetryTransaction):
        return True
    return isinstance(error, DBAPIError) and sqlstate(error) in RETRYABLE_SQLSTATES


def _broke_before_any_statement(error: BaseException, progress: StatementProgress) -> bool:
    """The connection turned out broken at the transaction's first statement (the server restarted
    since it was pooled, before its socket told us): nothing was sent that could have committed,
    and the pool has already dropped it, so the unit may run again on a fresh one."""
    return isinstance(error, DBAPIError) and error.connection_invalidated and not progress.any


async def run_in_transaction(
    engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]]
) -> T:
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            async with engine.begin() as connection:
                progress = StatementProgress(connection)
                try:
                    return await work(connection)
                except Exception as error:
                    if _broke_before_any_statement(error, progress):
                        raise RetryTransaction() from error
                    raise
        except Exception as error:
            if attempt == MAX_ATTEMPTS or not is_retryable(error):
                raise
        # Jittered backoff so that the writers that collided do not collide again in step.
        await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
    raise AssertionError("unreachable")


async def run_without_transaction(
    engine: AsyncEngine,
    work: Callable[[AsyncConnection], Awaitable[T]],
    options: dict[str, Any],
) -> T:
    """Run read-only `work` on a connection with `options` (no transaction of its own: see
    `Database.read`), once more on a fresh connection when the first turned out broken before any
    statement succeeded."""
    for attempt in (1, 2):
        async with engine.connect() as plain:
            connection = await plain.execution_options(**options)
            progress = StatementProgress(connection)
            try:
                return await work(connection)
            except Exception as error:
                if attempt == 2 or not _broke_before_any_statement(error, progress):
                    raise
    raise AssertionError("unreachable")
