"""Daily checkpoints of each institution's head: published by the `checkpoint_ledgers` job once per
institution and day, append-only, and compared by verify, so that removing the journal's tail and
rolling the head back no longer passes."""

from datetime import timedelta

import pytest
from sqlalchemy.exc import DBAPIError

from app.kit.clock import utcnow
from app.kit.workdays import local_date
from app.ledger import service as ledger
from app.models.api_key import Role
from tests.factories import auth, make_key
from tests.ledger.conftest import Books, db_id, payment, plain_sql, post, tamper, verify


async def _run_checkpoint_job(client, engine, as_of) -> int:
    admin = auth(await make_key(engine, Role.admin))
    reply = await client.post(
        "/v1/admin/jobs/checkpoint_ledgers", json={"as_of": as_of.isoformat()}, headers=admin
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["handled"]


async def _checkpoints(engine, books: Books):
    async with engine.connect() as connection:
        return await ledger.checkpoints(connection, books.institution_id)


async def _five_payments_checkpointed(client, engine, books: Books):
    for n in range(1, 6):
        await post(engine, books, payment(f"p{n}", books, 100))
    now = utcnow()
    assert await _run_checkpoint_job(client, engine, now) >= 1
    [checkpoint] = await _checkpoints(engine, books)
    report = await verify(engine, books.institution_id)
    assert report.intact and (checkpoint.seq, checkpoint.day) == (5, local_date(now))
    return checkpoint


async def _cut_tail_after(engine, books: Books, seq: int, cash_fen: int) -> None:
    """Remove the entries after `seq` and roll the head and the balances back to match, as someone
    with the database's superuser powers would to hide them."""
    i = db_id(engine, books.institution_id)
    await tamper(
        engine,
        "DELETE FROM ledger_postings WHERE institution_id = :i AND entry_seq > :s",
        i=i,
        s=seq,
    )
    await tamper(
        engine, "DELETE FROM ledger_entries WHERE institution_id = :i AND seq > :s", i=i, s=seq
    )
    await tamper(
        engine,
        "UPDATE ledger_heads SET last_seq = :s, last_hash = (SELECT hash FROM ledger_entries"
        " WHERE institution_id = :i AND seq = :s) WHERE institution_id = :i",
        i=i,
        s=seq,
    )
    for account, balance in ((books.cash, cash_fen), (books.prepaid[0], -cash_fen)):
        await tamper(
            engine,
            "UPDATE ledger_accounts SET balance_fen = :b, last_seq = :s"
            " WHERE institution_id = :i AND id = :a",
            b=balance,
            s=seq,
            i=i,
            a=db_id(engine, account.id),
        )


async def test_a_tail_removed_with_the_head_rolled_back_is_caught_by_the_checkpoint(
    client, engine, books: Books
):
    checkpoint = await _five_payments_checkpointed(client, engine, books)
    await _cut_tail_after(engine, books, 3, cash_fen=300)

    report = await verify(engine, books.institution_id)

    assert not report.intact
    assert (report.first_bad_seq, report.verified_through_seq) == (4, 3)
    assert report.checkpoint_day == checkpoint.day
    assert report.problem == (
        f"entries 4 to 5 are missing: the checkpoint of {checkpoint.day} recorded entry 5, "
        "the journal ends at entry 3"
    )


async def test_a_tail_rewritten_after_a_checkpoint_is_caught(client, engine, books: Books):
    checkpoint = await _five_payments_checkpointed(client, engine, books)
    await _cut_tail_after(engine, books, 3, cash_fen=300)
    for n in (4, 5):  # new entries in the removed ones' place, chained properly
        await post(engine, books, payment(f"forged{n}", books, 100))

    report = await verify(engine, books.institution_id)

    assert not report.intact and report.first_bad_seq == 5
    assert report.checkpoint_day == checkpoint.day
    assert report.problem.startswith(f"entry 5 differs from the checkpoint of {checkpoint.day}")


async def test_one_checkpoint_per_institution_and_day(client, engine, books: Books):
    checkpoint = await _five_payments_checkpointed(client, engine, books)
    await post(engine, books, payment("p6", books, 100))

    await _run_checkpoint_job(client, engine, checkpoint.taken_at + timedelta(minutes=1))
    assert await _checkpoints(engine, books) == [checkpoint]  # the day's stays as published

    await _run_checkpoint_job(client, engine, checkpoint.taken_at + timedelta(days=1))
    first, second = await _checkpoints(engine, books)
    assert first == checkpoint and (second.seq, second.day) == (6, checkpoint.day + timedelta(1))
    assert (await verify(engine, books.institution_id)).intact


async def test_checkpoints_are_append_only(client, engine, books: Books):
    await _five_payments_checkpointed(client, engine, books)
    for statement in (
        "UPDATE ledger_checkpoints SET seq = 3 WHERE institution_id = :i",
        "DELETE FROM ledger_checkpoints WHERE institution_id = :i",
    ):
        with pytest.raises(DBAPIError, match="refuses"):
            await plain_sql(engine, statement, i=db_id(engine, books.institution_id))
    assert [c.seq for c in await _checkpoints(engine, books)] == [5]
