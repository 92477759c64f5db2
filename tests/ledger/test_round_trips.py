"""What a post sends to PostgreSQL: the lock once, one read under it, one write, whatever the batch;
and a lock that may have been released is taken again rather than trusted."""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db.transaction import run_in_transaction
from app.ledger import service as ledger
from tests.ledger.conftest import Books, balances, payment, verify

pytestmark = pytest.mark.postgres_only


async def _sent(
    engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[Any]]
) -> list[str]:
    """The statements `work` sends in one unit of work (BEGIN and COMMIT aside)."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        await run_in_transaction(engine, work)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    return statements


def _locks(statements: list[str]) -> int:
    return sum("FOR UPDATE" in statement for statement in statements)


async def test_a_batch_is_posted_in_three_statements_whatever_its_size(
    engine: AsyncEngine, books: Books
):
    for size in (1, 40):
        drafts = [payment(f"p{size}:{n}", books, 100, enrollment=n % 2) for n in range(size)]
        sent = await _sent(engine, lambda c, d=drafts: ledger.post_many(c, books.institution_id, d))
        assert len(sent) == 3, sent
        assert _locks(sent[:1]) == 1  # the lock first, then the read and the write
    assert sum((await balances(engine, books)).values()) == 2 * 41 * 100
    assert (await verify(engine, books.institution_id)).intact


async def test_a_lock_taken_before_posting_is_not_taken_again(engine: AsyncEngine, books: Books):
    async def lock_then_post(connection: AsyncConnection) -> None:
        await ledger.lock(connection, books.institution_id)
        await ledger.post(connection, books.institution_id, payment("first", books, 100))
        await ledger.post(connection, books.institution_id, payment("second", books, 100))

    sent = await _sent(engine, lock_then_post)
    assert _locks(sent) == 1
    assert len(sent) == 5  # one lock, then a read and a write per post
    assert (await verify(engine, books.institution_id)).intact


async def test_a_lock_released_with_its_savepoint_is_taken_again(engine: AsyncEngine, books: Books):
    async def lock_in_savepoint_then_post(connection: AsyncConnection) -> None:
        savepoint = await connection.begin_nested()
        await ledger.lock(connection, books.institution_id)
        await savepoint.rollback()  # PostgreSQL releases the row lock taken in it
        await ledger.post(connection, books.institution_id, payment("after", books, 100))

    sent = await _sent(engine, lock_in_savepoint_then_post)
    assert _locks(sent) == 2


async def test_a_new_transaction_takes_the_lock_again(engine: AsyncEngine, books: Books):
    for key in ("one", "two"):
        sent = await _sent(
            engine, lambda c, k=key: ledger.post(c, books.institution_id, payment(k, books, 100))
        )
        assert _locks(sent) == 1
