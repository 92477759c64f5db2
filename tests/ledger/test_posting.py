"""Posting entries: balances, idempotency, refusals that write nothing, the database's own guards."""

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.db.transaction import run_in_transaction
from app.kit.clock import utcnow
from app.ledger import service as ledger
from app.ledger.errors import (
    CrossInstitutionEntry,
    IdempotencyKeyReused,
    InsufficientBalance,
    InvalidAmount,
    InvalidEntry,
    LedgerError,
    UnbalancedEntry,
    UnknownAccount,
)
from app.ledger.types import EntryDraft, Posting
from tests.ledger.conftest import (
    Books,
    balances,
    db_id,
    journal_size,
    open_books,
    payment,
    post,
)


async def test_payment_moves_both_sides_and_balances_sum_to_zero(engine, books: Books):
    entry = await post(engine, books, payment("pay-1", books, 150_000))

    assert entry.seq == 1 and not entry.replayed
    seen = await balances(engine, books)
    assert seen[books.cash.id] == 150_000
    assert seen[books.prepaid[0].id] == 150_000
    async with engine.connect() as connection:
        raw = await ledger.accounts(connection, books.institution_id)
    assert sum(account.balance_fen for account in raw.values()) == 0


async def test_same_key_ten_times_posts_once(engine, books: Books):
    draft = payment("pay-once", books, 5_000)
    results = [await post(engine, books, draft) for _ in range(10)]

    assert {r.seq for r in results} == {1}
    assert [r.replayed for r in results] == [False] + [True] * 9
    assert (await balances(engine, books))[books.cash.id] == 5_000
    assert await journal_size(engine, books.institution_id) == (1, 2)


async def test_same_key_ten_times_at_once_posts_once(engine, books: Books):
    draft = payment("pay-race", books, 7_000)
    results = await asyncio.gather(*(post(engine, books, draft) for _ in range(10)))

    assert {r.seq for r in results} == {1}
    assert sum(not r.replayed for r in results) == 1
    assert (await balances(engine, books))[books.cash.id] == 7_000
    assert await journal_size(engine, books.institution_id) == (1, 2)


async def test_same_key_with_other_content_is_refused(engine, books: Books):
    await post(engine, books, payment("pay-x", books, 100))
    with pytest.raises(IdempotencyKeyReused):
        await post(engine, books, payment("pay-x", books, 101))
    assert (await balances(engine, books))[books.cash.id] == 100


async def test_batch_items_are_accepted_or_refused_on_their_own(engine, books: Books):
    drafts = [
        payment("b-1", books, 300),
        EntryDraft.transfer("b-2", "refund", books.prepaid[0].id, books.cash.id, 500),  # too much
        EntryDraft.transfer("b-3", "refund", books.prepaid[0].id, books.cash.id, 200),
        payment("b-1", books, 300),  # the first again, in the same batch
    ]
    results = await run_in_transaction(
        engine, lambda c: ledger.post_many(c, books.institution_id, drafts)
    )

    assert results[0].seq == 1
    assert isinstance(results[1], InsufficientBalance)
    assert results[2].seq == 2
    assert results[3].seq == 1 and results[3].replayed
    assert (await balances(engine, books))[books.cash.id] == 100


async def test_limit_refusal_names_the_account_and_figures(engine, books: Books):
    await post(engine, books, payment("in", books, 150))
    with pytest.raises(InsufficientBalance) as refused:
        await post(
            engine,
            books,
            EntryDraft.transfer("out", "refund", books.prepaid[0].id, books.cash.id, 151),
        )
    assert refused.value.extra["requested_balance_fen"] == -1
    assert "holds 150 fen" in refused.value.detail


@pytest.mark.parametrize(
    "amount",
    [0, -5, 1.5, "100", True, None, 2**63, -(2**63), 10**30],
    ids=["zero", "negative", "fractional", "string", "bool", "none", "2^63", "-2^63", "huge"],
)
async def test_bad_amounts_are_refused(engine, books: Books, amount):
    if amount != -5:  # a raw posting is signed: only a debit or a credit must be positive
        with pytest.raises(InvalidAmount):
            draft = EntryDraft(
                "bad", "payment", (Posting(books.cash.id, amount), Posting(books.prepaid[0].id, -1))
            )
            await post(engine, books, draft)
    with pytest.raises(InvalidAmount):
        EntryDraft.transfer("bad", "payment", books.cash.id, books.prepaid[0].id, amount)
    assert await journal_size(engine, books.institution_id) == (0, 0)


async def test_unbalanced_entry_is_refused(engine, books: Books):
    draft = EntryDraft(
        "u", "payment", (Posting(books.cash.id, 100), Posting(books.prepaid[0].id, -99))
    )
    with pytest.raises(UnbalancedEntry) as refused:
        await post(engine, books, draft)
    assert refused.value.extra["imbalance_fen"] == 1
    assert await journal_size(engine, books.institution_id) == (0, 0)


async def test_single_posting_is_refused(engine, books: Books):
    with pytest.raises(InvalidEntry):
        await post(engine, books, EntryDraft("one", "x", (Posting(books.cash.id, 1),)))


async def test_unknown_and_foreign_accounts_are_refused(engine, books: Books):
    other = await open_books(engine)
    with pytest.raises(UnknownAccount):
        await post(
            engine, books, EntryDraft.transfer("u", "payment", books.cash.id, uuid.uuid4(), 1)
        )
    with pytest.raises(CrossInstitutionEntry):
        await post(
            engine,
            books,
            EntryDraft.transfer("f", "payment", books.cash.id, other.prepaid[0].id, 1),
        )
    assert await journal_size(engine, books.institution_id) == (0, 0)
    assert await journal_size(engine, other.institution_id) == (0, 0)


async def test_refusal_inside_a_unit_of_work_leaves_nothing(engine, books: Books):
    """An entry refused after another was posted in the same transaction: the caller's unit of work
    fails, and its transaction takes the first entry with it."""

    async def work(connection):
        await ledger.post(connection, books.institution_id, payment("ok", books, 10))
        await ledger.post(
            connection,
            books.institution_id,
            EntryDraft.transfer("too-much", "refund", books.prepaid[0].id, books.cash.id, 11),
        )

    with pytest.raises(LedgerError):
        await run_in_transaction(engine, work)
    assert await journal_size(engine, books.institution_id) == (0, 0)
    assert (await balances(engine, books))[books.cash.id] == 0


async def test_database_refuses_an_unbalanced_entry_written_directly(engine, books: Books):
    inst = db_id(engine, books.institution_id)
    with pytest.raises(DBAPIError, match="balance"):
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO ledger_postings (institution_id, entry_seq, line_no, account_id,"
                    " amount_fen) VALUES (:i, 1, 0, :a, 100), (:i, 1, 1, :b, -99)"
                ),
                {
                    "i": inst,
                    "a": db_id(engine, books.cash.id),
                    "b": db_id(engine, books.prepaid[0].id),
                },
            )
            await connection.execute(
                text(
                    "INSERT INTO ledger_entries (institution_id, seq, idempotency_key, kind,"
                    " posted_at, posting_count, content_hash, prev_hash, hash)"
                    " VALUES (:i, 1, 'raw', 'raw', :t, 2, 'x', 'x', 'x')"
                ),
                {"i": inst, "t": utcnow()},
            )
    assert await journal_size(engine, books.institution_id) == (0, 0)


async def test_database_refuses_a_posting_added_to_a_closed_entry(engine, books: Books):
    await post(engine, books, payment("p", books, 100))
    with pytest.raises(DBAPIError):
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO ledger_postings (institution_id, entry_seq, line_no, account_id,"
                    " amount_fen) VALUES (:i, 1, 2, :a, 5)"
                ),
                {"i": db_id(engine, books.institution_id), "a": db_id(engine, books.cash.id)},
            )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_postings SET amount_fen = 1 WHERE institution_id = :i",
        "DELETE FROM ledger_postings WHERE institution_id = :i",
        "UPDATE ledger_entries SET memo = 'x' WHERE institution_id = :i",
        "DELETE FROM ledger_entries WHERE institution_id = :i",
    ],
)
async def test_database_refuses_changing_the_journal(engine, books: Books, statement):
    await post(engine, books, payment("p", books, 100))
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as connection:
            await connection.execute(text(statement), {"i": db_id(engine, books.institution_id)})
    assert await journal_size(engine, books.institution_id) == (1, 2)


async def test_balances_as_of_past_moments_equal_what_was_maintained(engine, books: Books):
    snapshots = []
    for n in range(1, 6):
        await post(engine, books, payment(f"p{n}", books, 100 * n, enrollment=n % 2))
        if n % 2:
            await post(
                engine,
                books,
                EntryDraft.transfer(
                    f"c{n}", "lesson", books.prepaid[n % 2].id, books.releasable.id, 10 * n
                ),
            )
        async with engine.connect() as connection:
            raw = await ledger.accounts(connection, books.institution_id)
        snapshots.append(
            (utcnow(), {a: acc.balance_fen for a, acc in raw.items() if acc.balance_fen})
        )
        await asyncio.sleep(0.002)

    async with engine.connect() as connection:
        for moment, expected in snapshots:
            as_of = await ledger.balances_as_of(connection, books.institution_id, moment)
            assert {a: b for a, b in as_of.items() if b} == expected
        before = await ledger.balances_as_of(
            connection, books.institution_id, snapshots[0][0] - timedelta(days=1)
        )
    assert before == {}


async def test_moments_compare_as_moments_whatever_their_zone(engine, books: Books):
    """A moment given in Asia/Shanghai is compared with stored ones as the same instant (SQLite
    keeps text: without converting, it would compare the digits)."""
    from zoneinfo import ZoneInfo

    entry = await post(engine, books, payment("p", books, 100))
    shanghai = ZoneInfo("Asia/Shanghai")
    an_hour_before = (entry.posted_at - timedelta(hours=1)).astimezone(shanghai)
    an_hour_after = (entry.posted_at + timedelta(hours=1)).astimezone(shanghai)
    async with engine.connect() as connection:
        since_before = await ledger.credited_since(
            connection, books.institution_id, books.prepaid[0].id, "payment", an_hour_before
        )
        since_after = await ledger.credited_since(
            connection, books.institution_id, books.prepaid[0].id, "payment", an_hour_after
        )
    assert (since_before, since_after) == (100, 0)
