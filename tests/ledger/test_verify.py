"""Tamper evidence: a journal row changed or removed behind the ledger's back is named by verify."""

from app.ledger.types import EntryDraft
from tests.ledger.conftest import Books, db_id, payment, post, tamper, verify


async def _five_entries(engine, books: Books) -> None:
    for n in range(1, 4):
        await post(engine, books, payment(f"p{n}", books, 1_000 * n))
    await post(
        engine,
        books,
        EntryDraft.transfer("l1", "lesson", books.prepaid[0].id, books.releasable.id, 300),
    )
    await post(
        engine,
        books,
        EntryDraft.transfer("l2", "lesson", books.prepaid[0].id, books.releasable.id, 200),
    )


async def test_an_untouched_journal_verifies(engine, books: Books):
    await _five_entries(engine, books)
    report = await verify(engine, books.institution_id)
    assert report.intact and report.verified_through_seq == 5 and report.head_seq == 5


async def test_an_altered_amount_is_named(engine, books: Books):
    await _five_entries(engine, books)
    await tamper(
        engine,
        "UPDATE ledger_postings SET amount_fen = amount_fen * 10"
        " WHERE institution_id = :i AND entry_seq = 3",
        i=db_id(engine, books.institution_id),
    )
    report = await verify(engine, books.institution_id)
    assert not report.intact
    assert report.first_bad_seq == 3 and report.verified_through_seq == 2
    assert "entry 3 was altered" in report.problem


async def test_an_altered_entry_with_recomputed_digest_breaks_the_chain(engine, books: Books):
    await _five_entries(engine, books)
    await tamper(
        engine,
        "UPDATE ledger_entries SET memo = 'edited', content_hash = 'f' WHERE institution_id = :i AND seq = 2",
        i=db_id(engine, books.institution_id),
    )
    report = await verify(engine, books.institution_id)
    assert not report.intact and report.first_bad_seq == 2


async def test_a_deleted_entry_is_named(engine, books: Books):
    await _five_entries(engine, books)
    await tamper(
        engine,
        "DELETE FROM ledger_postings WHERE institution_id = :i AND entry_seq = 4",
        i=db_id(engine, books.institution_id),
    )
    await tamper(
        engine,
        "DELETE FROM ledger_entries WHERE institution_id = :i AND seq = 4",
        i=db_id(engine, books.institution_id),
    )
    report = await verify(engine, books.institution_id)
    assert not report.intact
    assert report.first_bad_seq == 4 and report.problem == "entry 4 is missing"


async def test_a_deleted_last_entry_is_named(engine, books: Books):
    await _five_entries(engine, books)
    for table, column in (("ledger_postings", "entry_seq"), ("ledger_entries", "seq")):
        await tamper(
            engine,
            f"DELETE FROM {table} WHERE institution_id = :i AND {column} = 5",
            i=db_id(engine, books.institution_id),
        )
    report = await verify(engine, books.institution_id)
    assert not report.intact and report.first_bad_seq == 5 and report.verified_through_seq == 4


async def test_a_balance_changed_behind_the_ledger_is_found(engine, books: Books):
    await _five_entries(engine, books)
    await tamper(
        engine,
        "UPDATE ledger_accounts SET balance_fen = balance_fen + 1 WHERE institution_id = :i AND id = :a",
        i=db_id(engine, books.institution_id),
        a=db_id(engine, books.cash.id),
    )
    report = await verify(engine, books.institution_id)
    assert not report.intact and report.balance_mismatches == {books.cash.id: (6_001, 6_000)}
