"""`prepaid-guard verify-ledger` says what failed, and that an institution named has no ledger."""

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from app import cli
from app.config import get_settings
from app.db.engine import create_engine
from tests.factories import make_paid_enrollment, make_world
from tests.ledger.conftest import db_id, open_books, payment, plain_sql, post, tamper

runner = CliRunner()


@pytest.fixture
def fresh_settings(database_url) -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _on_database(database_url, work):
    async def run():
        engine = create_engine(database_url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_an_unknown_institution_is_named_and_fails(database_url, fresh_settings):
    async def one_ledger(engine):
        books = await open_books(engine)
        await post(engine, books, payment("p", books, 100))
        return books

    books = _on_database(database_url, one_ledger)
    unknown = uuid.uuid4()

    result = runner.invoke(cli.cli, ["verify-ledger", str(books.institution_id), str(unknown)])

    assert result.exit_code == 2, result.output
    assert f"{unknown}: no such institution has a ledger" in result.output
    assert "1 institutions, 1 entries checked: all intact" in result.output


def test_the_disagreeing_enrollment_is_named(database_url, fresh_settings):
    async def tampered_enrollment(engine):
        world = await make_world(engine)
        enrollment = await make_paid_enrollment(engine, world, lessons=4)
        await plain_sql(
            engine,
            "UPDATE enrollments SET paid_fen = 1 WHERE institution_id = :i AND id = :e",
            i=db_id(engine, world.institution_id),
            e=db_id(engine, enrollment.id),
        )
        return enrollment

    enrollment = _on_database(database_url, tampered_enrollment)

    result = runner.invoke(cli.cli, ["verify-ledger", str(enrollment.institution_id)])

    assert result.exit_code == 1, result.output
    assert f"{enrollment.institution_id}: enrollment {enrollment.id} says paid 1" in result.output


def test_a_removed_tail_is_named_against_the_checkpoint_the_job_published(
    database_url, fresh_settings
):
    async def three_payments(engine):
        books = await open_books(engine)
        for n in range(3):
            await post(engine, books, payment(f"p{n}", books, 100))
        return books

    books = _on_database(database_url, three_payments)
    published = runner.invoke(cli.cli, ["run-job", "checkpoint_ledgers"])
    assert published.exit_code == 0, published.output

    async def remove_last_entry(engine):
        i = db_id(engine, books.institution_id)
        for table, column in (("ledger_postings", "entry_seq"), ("ledger_entries", "seq")):
            await tamper(
                engine, f"DELETE FROM {table} WHERE institution_id = :i AND {column} = 3", i=i
            )
        await tamper(
            engine,
            "UPDATE ledger_heads SET last_seq = 2, last_hash = (SELECT hash FROM ledger_entries"
            " WHERE institution_id = :i AND seq = 2) WHERE institution_id = :i",
            i=i,
        )
        for account, balance in ((books.cash, 200), (books.prepaid[0], -200)):
            await tamper(
                engine,
                "UPDATE ledger_accounts SET balance_fen = :b WHERE institution_id = :i AND id = :a",
                b=balance,
                i=i,
                a=db_id(engine, account.id),
            )

    _on_database(database_url, remove_last_entry)

    result = runner.invoke(cli.cli, ["verify-ledger", str(books.institution_id)])

    assert result.exit_code == 1, result.output
    assert f"{books.institution_id}: entry 3 is missing: the checkpoint of" in result.output
