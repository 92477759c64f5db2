"""Creating a row whose natural key must be unique (a jurisdiction's code, an institution's USCC).

The service looks for an existing row first, to refuse a duplicate with a clear code. Two requests
creating the same key at once both pass that look on PostgreSQL; the second one's insert then waits
for the first to commit and fails the unique constraint. That failure means "the ground moved":
the unit of work is run again, and this time the look finds the row and refuses properly. (SQLite
serialises writers from BEGIN, so there the look alone is enough.)
"""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.transaction import RetryTransaction, sqlstate

UNIQUE_VIOLATION = "23505"


@contextmanager
def retry_on_unique_violation() -> Iterator[None]:
    """Around the statements that insert the keyed rows (an ORM flush or a Core insert)."""
    try:
        yield
    except IntegrityError as error:
        if sqlstate(error) != UNIQUE_VIOLATION:
            raise
        raise RetryTransaction("a concurrent request created the same row") from error


async def flush_or_retry(session: AsyncSession) -> None:
    with retry_on_unique_violation():
        await session.flush()
