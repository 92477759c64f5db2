"""Many writers at once on PostgreSQL: row locks, not luck, keep the money exact."""

import asyncio
import random

import pytest

from app.db.transaction import run_in_transaction
from app.ledger import service as ledger
from app.ledger.errors import InsufficientBalance
from app.ledger.types import EntryDraft, Posting
from tests.ledger.conftest import balances, open_books, payment, post, verify

pytestmark = pytest.mark.postgres_only


async def test_200_writers_drawing_1_from_150(engine):
    books = await open_books(engine)
    await post(engine, books, payment("fund", books, 150))

    async def draw(n: int):
        draft = EntryDraft.transfer(f"draw-{n}", "refund", books.prepaid[0].id, books.cash.id, 1)
        return await post(engine, books, draft)

    outcomes = await asyncio.gather(*(draw(n) for n in range(200)), return_exceptions=True)

    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(outcomes) - len(refused) == 150
    assert len(refused) == 50
    assert all(isinstance(o, InsufficientBalance) for o in refused), {type(o) for o in refused}
    assert "may not go below 0 fen" in refused[0].detail
    seen = await balances(engine, books)
    assert (seen[books.cash.id], seen[books.prepaid[0].id]) == (0, 0)
    assert (await verify(engine, books.institution_id)).intact


async def test_500_transfers_among_10_accounts_in_random_order(engine):
    books = await open_books(engine, enrollments=10)
    for n, account in enumerate(books.prepaid):
        await post(
            engine,
            books,
            EntryDraft.transfer(f"fund-{n}", "payment", books.cash.id, account.id, 1_000),
        )
    rng = random.Random(7)

    async def transfer(n: int):
        source, target = rng.sample(books.prepaid, 2)
        amount = rng.randint(1, 400)
        postings = [Posting.debit(source.id, amount), Posting.credit(target.id, amount)]
        rng.shuffle(postings)
        return await post(engine, books, EntryDraft(f"move-{n}", "transfer", tuple(postings)))

    outcomes = await asyncio.gather(*(transfer(n) for n in range(500)), return_exceptions=True)

    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert all(isinstance(e, InsufficientBalance) for e in errors), {type(e) for e in errors}
    assert len(errors) < 500
    seen = await balances(engine, books)
    assert sum(seen[a.id] for a in books.prepaid) == 10_000
    assert seen[books.cash.id] == 10_000
    assert all(seen[a.id] >= 0 for a in books.prepaid)
    report = await verify(engine, books.institution_id)
    assert report.intact and report.head_seq == 10 + 500 - len(errors)


async def test_institutions_write_side_by_side(engine):
    """Writers of different institutions never wait on one another's lock: each ends exact."""
    all_books = [await open_books(engine) for _ in range(8)]

    async def pay(books, n):
        return await post(engine, books, payment(f"p{n}", books, 10))

    await asyncio.gather(*(pay(books, n) for books in all_books for n in range(25)))
    for books in all_books:
        assert (await balances(engine, books))[books.cash.id] == 250
        assert (await verify(engine, books.institution_id)).head_seq == 25


async def test_a_cancelled_writer_leaves_nothing_and_releases_the_lock(engine):
    books = await open_books(engine)
    started = asyncio.Event()

    async def work(connection):
        await ledger.post(connection, books.institution_id, payment("cancelled", books, 99))
        started.set()
        await asyncio.sleep(30)  # cancelled here, before the commit

    task = asyncio.create_task(run_in_transaction(engine, work))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    entry = await asyncio.wait_for(post(engine, books, payment("next", books, 1)), timeout=10)
    assert entry.seq == 1
    assert (await balances(engine, books))[books.cash.id] == 1


async def test_verify_during_writes_finds_nothing_wrong(engine):
    """Verify reads one snapshot: entries committed while it walks are not taken for tampering."""
    books = await open_books(engine)
    await post(engine, books, payment("fund", books, 10_000))
    writing = True

    async def write():
        nonlocal writing
        for n in range(150):
            await post(engine, books, payment(f"more-{n}", books, 1 + n % 2))
        writing = False

    async def check():
        reports = []
        while writing:
            reports.append(await verify(engine, books.institution_id))
        return reports

    _, reports = await asyncio.gather(write(), check())
    assert len(reports) > 1
    assert all(report.intact for report in reports), [r.problem for r in reports if not r.intact]
