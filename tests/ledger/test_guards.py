"""Heads, accounts and transfers change only by the ledger's own statements: the database refuses a
plain UPDATE or DELETE that is not a legal transition, and verify catches a legal-looking one that
the journal does not back."""

import pytest
from sqlalchemy.exc import DBAPIError

from app.db.transaction import run_in_transaction
from app.kit.clock import utcnow
from app.ledger import service as ledger
from app.ledger.types import EntryDraft, TransferStatus
from tests.ledger.conftest import Books, balances, db_id, payment, plain_sql, post, verify


async def _pending_payout(engine, books: Books, amount_fen: int = 600):
    """Seq 1 pays in 1,000, seq 2 releases it, seq 3 reserves a payout of `amount_fen`."""
    await post(engine, books, payment("pay", books, 1_000))
    await post(
        engine,
        books,
        EntryDraft.transfer("lesson", "lesson", books.prepaid[0].id, books.releasable.id, 1_000),
    )
    return await run_in_transaction(
        engine,
        lambda c: ledger.reserve(
            c,
            books.institution_id,
            idempotency_key="payout",
            kind="payout_reserved",
            source=books.releasable.id,
            transit=books.payout_in_transit.id,
            settle=books.cash.id,
            amount_fen=amount_fen,
        ),
    )


async def _transfer(engine, books: Books, transfer_id):
    async with engine.connect() as connection:
        return await ledger.transfer(connection, books.institution_id, transfer_id)


async def test_a_pending_transfer_turned_voided_with_ten_times_its_amount_is_refused(
    engine, books: Books
):
    transfer = await _pending_payout(engine, books)
    with pytest.raises(DBAPIError, match="transfer is only resolved"):
        await plain_sql(
            engine,
            "UPDATE ledger_transfers SET status = 'voided', amount_fen = amount_fen * 10,"
            " resolve_seq = 3, resolved_at = :now WHERE institution_id = :i AND id = :t",
            now=utcnow(),
            i=db_id(engine, books.institution_id),
            t=db_id(engine, transfer.id),
        )
    with pytest.raises(DBAPIError, match="transfer is only resolved"):
        await plain_sql(
            engine,
            "UPDATE ledger_transfers SET amount_fen = 60 WHERE institution_id = :i AND id = :t",
            i=db_id(engine, books.institution_id),
            t=db_id(engine, transfer.id),
        )
    assert await _transfer(engine, books, transfer.id) == transfer
    assert (await verify(engine, books.institution_id)).intact


async def test_a_resolved_transfer_cannot_be_turned_back_or_deleted(engine, books: Books):
    transfer = await _pending_payout(engine, books)
    await run_in_transaction(
        engine, lambda c: ledger.post_transfer(c, books.institution_id, transfer.id)
    )
    for statement in (
        "UPDATE ledger_transfers SET status = 'voided' WHERE institution_id = :i AND id = :t",
        "UPDATE ledger_transfers SET status = 'pending', resolve_seq = NULL, resolved_at = NULL"
        " WHERE institution_id = :i AND id = :t",
        "DELETE FROM ledger_transfers WHERE institution_id = :i AND id = :t",
    ):
        with pytest.raises(DBAPIError, match=r"refuse|transfer is only resolved"):
            await plain_sql(
                engine,
                statement,
                i=db_id(engine, books.institution_id),
                t=db_id(engine, transfer.id),
            )
    assert (await _transfer(engine, books, transfer.id)).status is TransferStatus.posted
    assert (await verify(engine, books.institution_id)).intact


async def test_a_legal_looking_resolution_the_journal_does_not_back_is_named_by_verify(
    engine, books: Books
):
    """The database lets a pending transfer be resolved by a later entry, as the ledger does; only
    the journal can tell that entry 4 is a payment, not this transfer's resolution."""
    transfer = await _pending_payout(engine, books)
    await post(engine, books, payment("pay-2", books, 50))
    await plain_sql(
        engine,
        "UPDATE ledger_transfers SET status = 'voided', resolve_seq = 4, resolved_at = :now"
        " WHERE institution_id = :i AND id = :t",
        now=utcnow(),
        i=db_id(engine, books.institution_id),
        t=db_id(engine, transfer.id),
    )
    report = await verify(engine, books.institution_id)
    assert not report.intact and report.transfer_id == transfer.id
    assert report.problem == (
        f"transfer {transfer.id} is voided, but entry 4 is not its resolution"
    )


async def test_a_balance_edited_apart_from_its_postings_is_refused(engine, books: Books):
    await post(engine, books, payment("pay", books, 1_000))
    for assignment in ("balance_fen = balance_fen + 1", "balance_fen = 1, last_seq = last_seq + 1"):
        with pytest.raises(DBAPIError, match="changes only by its postings"):
            await plain_sql(
                engine,
                f"UPDATE ledger_accounts SET {assignment} WHERE institution_id = :i AND id = :a",
                i=db_id(engine, books.institution_id),
                a=db_id(engine, books.cash.id),
            )
    with pytest.raises(DBAPIError, match="refuse"):
        await plain_sql(
            engine,
            "DELETE FROM ledger_accounts WHERE institution_id = :i AND id = :a",
            i=db_id(engine, books.institution_id),
            a=db_id(engine, books.refund_in_transit.id),
        )
    assert (await balances(engine, books))[books.cash.id] == 1_000
    assert (await verify(engine, books.institution_id)).intact


async def test_a_head_rolled_back_or_moved_off_the_journal_is_refused(engine, books: Books):
    for n in range(3):
        await post(engine, books, payment(f"p{n}", books, 100))
    for assignment in (
        "last_seq = 2, last_hash = (SELECT hash FROM ledger_entries"
        " WHERE institution_id = :i AND seq = 2)",
        "last_seq = 4",
        f"last_hash = '{'f' * 64}'",
    ):
        with pytest.raises(DBAPIError, match="only moves forward"):
            await plain_sql(
                engine,
                f"UPDATE ledger_heads SET {assignment} WHERE institution_id = :i",
                i=db_id(engine, books.institution_id),
            )
    with pytest.raises(DBAPIError, match="refuse"):
        await plain_sql(
            engine,
            "DELETE FROM ledger_heads WHERE institution_id = :i",
            i=db_id(engine, books.institution_id),
        )
    report = await verify(engine, books.institution_id)
    assert report.intact and report.head_seq == 3
