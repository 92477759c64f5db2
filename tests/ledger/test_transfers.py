"""Two-phase transfers: reserve, then post or void, each resolved at most once."""

import asyncio
import uuid

import pytest

from app.db.transaction import run_in_transaction
from app.ledger import service as ledger
from app.ledger.errors import InsufficientBalance, TransferAlreadyResolved, TransferNotFound
from app.ledger.types import EntryDraft, TransferStatus
from tests.ledger.conftest import Books, balances, post


async def _releasable(engine, books: Books, amount_fen: int) -> None:
    await post(
        engine,
        books,
        EntryDraft.transfer("pay", "payment", books.cash.id, books.prepaid[0].id, amount_fen),
    )
    await post(
        engine,
        books,
        EntryDraft.transfer(
            "lesson", "lesson", books.prepaid[0].id, books.releasable.id, amount_fen
        ),
    )


async def _reserve(engine, books: Books, amount_fen: int, key: str = "payout-1"):
    return await run_in_transaction(
        engine,
        lambda c: ledger.reserve(
            c,
            books.institution_id,
            idempotency_key=key,
            kind="payout_reserved",
            source=books.releasable.id,
            transit=books.payout_in_transit.id,
            settle=books.cash.id,
            amount_fen=amount_fen,
        ),
    )


async def _resolve(engine, books: Books, transfer_id, outcome: TransferStatus):
    resolve = ledger.post_transfer if outcome is TransferStatus.posted else ledger.void_transfer
    return await run_in_transaction(engine, lambda c: resolve(c, books.institution_id, transfer_id))


async def test_payout_reserved_then_settled_leaves_the_escrow(engine, books: Books):
    await _releasable(engine, books, 1_000)
    transfer = await _reserve(engine, books, 600)
    seen = await balances(engine, books)
    assert (seen[books.releasable.id], seen[books.payout_in_transit.id], seen[books.cash.id]) == (
        400,
        600,
        1_000,
    )

    settled = await _resolve(engine, books, transfer.id, TransferStatus.posted)
    assert settled.status is TransferStatus.posted
    seen = await balances(engine, books)
    assert (seen[books.releasable.id], seen[books.payout_in_transit.id], seen[books.cash.id]) == (
        400,
        0,
        400,
    )


async def test_void_puts_the_money_back(engine, books: Books):
    await _releasable(engine, books, 1_000)
    transfer = await _reserve(engine, books, 1_000)
    await _resolve(engine, books, transfer.id, TransferStatus.voided)
    seen = await balances(engine, books)
    assert (seen[books.releasable.id], seen[books.payout_in_transit.id], seen[books.cash.id]) == (
        1_000,
        0,
        1_000,
    )


async def test_reserve_beyond_the_source_is_refused(engine, books: Books):
    await _releasable(engine, books, 100)
    with pytest.raises(InsufficientBalance):
        await _reserve(engine, books, 101)


async def test_reserving_the_same_key_again_returns_the_same_transfer(engine, books: Books):
    await _releasable(engine, books, 100)
    first = await _reserve(engine, books, 60)
    again = await _reserve(engine, books, 60)
    assert again.id == first.id and again.replayed
    assert (await balances(engine, books))[books.payout_in_transit.id] == 60


async def test_a_transfer_is_resolved_at_most_once(engine, books: Books):
    await _releasable(engine, books, 100)
    transfer = await _reserve(engine, books, 100)
    await _resolve(engine, books, transfer.id, TransferStatus.posted)

    again = await _resolve(engine, books, transfer.id, TransferStatus.posted)
    assert again.replayed and again.status is TransferStatus.posted
    with pytest.raises(TransferAlreadyResolved):
        await _resolve(engine, books, transfer.id, TransferStatus.voided)
    seen = await balances(engine, books)
    assert (seen[books.releasable.id], seen[books.payout_in_transit.id], seen[books.cash.id]) == (
        0,
        0,
        0,
    )


async def test_concurrent_post_and_void_resolve_once(engine, books: Books):
    await _releasable(engine, books, 100)
    transfer = await _reserve(engine, books, 100)
    outcomes = await asyncio.gather(
        *(
            _resolve(engine, books, transfer.id, outcome)
            for outcome in [TransferStatus.posted, TransferStatus.voided] * 5
        ),
        return_exceptions=True,
    )
    winners = {o.status for o in outcomes if not isinstance(o, Exception) and not o.replayed}
    assert len(winners) == 1
    assert all(isinstance(o, TransferAlreadyResolved) for o in outcomes if isinstance(o, Exception))
    seen = await balances(engine, books)
    assert seen[books.payout_in_transit.id] == 0
    expected = 100 if winners == {TransferStatus.voided} else 0
    assert (seen[books.cash.id], seen[books.releasable.id]) == (expected, expected)


async def test_unknown_transfer(engine, books: Books):
    with pytest.raises(TransferNotFound):
        await _resolve(engine, books, uuid.uuid4(), TransferStatus.posted)
