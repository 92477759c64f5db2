"""Group commit: concurrent callers of one institution share transactions, each gets its own result."""

import asyncio

import pytest

from app.ledger.batcher import LedgerBatcher
from app.ledger.errors import InsufficientBalance
from app.ledger.types import EntryDraft
from tests.ledger.conftest import Books, balances, open_books, payment, verify


async def test_each_caller_gets_its_own_results(engine, books: Books):
    batcher = LedgerBatcher(engine)

    async def caller(n: int):
        drafts = [payment(f"c{n}-pay", books, 10)]
        # Asks for more than the enrollment can ever hold: refused, alone.
        drafts.append(
            EntryDraft.transfer(
                f"c{n}-refund", "refund", books.prepaid[0].id, books.cash.id, 10_000
            )
        )
        return await batcher.post_many(books.institution_id, drafts)

    results = await asyncio.gather(*(caller(n) for n in range(30)))

    for n, (paid, refused) in enumerate(results):
        assert paid.idempotency_key == f"c{n}-pay"
        assert isinstance(refused, InsufficientBalance)
    assert len({paid.seq for paid, _ in results}) == 30
    assert (await balances(engine, books))[books.cash.id] == 300
    assert (await verify(engine, books.institution_id)).intact


async def test_single_post_raises_its_refusal(engine, books: Books):
    batcher = LedgerBatcher(engine)
    with pytest.raises(InsufficientBalance):
        await batcher.post(
            books.institution_id,
            EntryDraft.transfer("r", "refund", books.prepaid[0].id, books.cash.id, 1),
        )


async def test_institutions_are_never_batched_together(engine):
    batcher = LedgerBatcher(engine)
    first, second = await open_books(engine), await open_books(engine)
    entries = await asyncio.gather(
        *(
            batcher.post(b.institution_id, payment(f"p{n}", b, 5))
            for n in range(10)
            for b in (first, second)
        )
    )
    assert {e.institution_id for e in entries} == {first.institution_id, second.institution_id}
    for books in (first, second):
        assert (await verify(engine, books.institution_id)).head_seq == 10
