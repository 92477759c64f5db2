"""Importing opening balances (存量) into an institution's ledger, through the service the CLI
runs: all or nothing, checked against the escrow account's first statement, once per file."""

import asyncio
import uuid

import pytest
from sqlalchemy import select

from app.db.unit import Database
from app.kit.clock import utcnow
from app.ledger import service as ledger
from app.ledger.books import institution_books
from app.models import Enrollment, LedgerEntry, OpeningImport, ReconciliationBreak
from app.opening.csvfile import OpeningFileInvalid
from app.opening.service import (
    ACTOR,
    ENTRY_KIND,
    InstitutionNotFound,
    NoFirstStatement,
    RowsRefused,
    StatementDisagrees,
    import_opening_balances,
)
from tests.factories import auth, secret, valid_id_number
from tests.opening.helpers import CHINESE, csv_file, first_statement, onboarded, row


async def run_import(engine, institution_id, data, *, dry_run=False):
    return await Database(engine).run(
        lambda session: import_opening_balances(
            session, secret(), institution_id, data, "opening.csv", utcnow(), dry_run=dry_run
        )
    )


async def enrollments_of(engine, institution_id) -> list[Enrollment]:
    async def work(session):
        found = await session.scalars(
            select(Enrollment)
            .where(Enrollment.institution_id == institution_id)
            .order_by(Enrollment.amount_fen)
        )
        return list(found.all())

    return await Database(engine).run(work)


async def escrow_cash(engine, institution_id) -> int:
    async with engine.connect() as connection:
        books = await institution_books(connection, institution_id)
        return books.escrow_cash.normal_balance_fen


async def test_a_good_file_becomes_active_enrollments_whose_money_is_in_the_ledger(engine, client):
    place = await onboarded(engine)
    world = place.world
    mismatch = await first_statement(engine, world, opening_fen=1_234_567)
    data = csv_file(
        row(place.course_id, 1_000_000, 40),
        row(place.course_id, 234_500, 7),
        row(place.course_id, 67, 3),  # 22 fen a lesson, the last one 23
    )

    outcome = await run_import(engine, world.institution_id, data)

    assert (outcome.rows, outcome.total_fen, outcome.replayed) == (3, 1_234_567, False)
    assert outcome.check is not None and outcome.check.difference_fen == 0
    enrollments = await enrollments_of(engine, world.institution_id)
    assert [(e.status, e.lessons, e.amount_fen, e.paid_fen) for e in enrollments] == [
        ("active", 3, 67, 67),
        ("active", 7, 234_500, 234_500),
        ("active", 40, 1_000_000, 1_000_000),
    ]
    assert all(e.order_no.startswith("OB") and e.paid_at is None for e in enrollments)
    assert [e.lesson_price_fen for e in enrollments] == [22, 33_500, 25_000]
    assert len({item.parent_key for item in outcome.enrollments}) == 3
    # The first statement's difference with the ledger was these balances: explained now.
    closed = await Database(engine).run(
        lambda session: session.get(ReconciliationBreak, (world.institution_id, mismatch))
    )
    assert (closed.status, closed.closed_by) == ("closed", ACTOR)

    balance = await client.get(
        f"/v1/institutions/{world.institution_id}/balance", headers=auth(world.institution_key)
    )
    assert balance.status_code == 200, balance.text
    assert balance.json()["unconsumed_fen"] == 1_234_567
    assert balance.json()["ledger_balance_fen"] == 1_234_567
    assert await escrow_cash(engine, world.institution_id) == 1_234_567
    async with engine.connect() as connection:
        report = await ledger.verify(connection, world.institution_id)
        totals = await ledger.balances_by_kind(connection, world.institution_id)
    assert report.intact, report.problem
    assert report.entries_checked == 3
    assert totals["escrow_cash"] == totals["prepaid"] == 1_234_567  # the ledger's identity

    for item, enrollment in zip(
        sorted(outcome.enrollments, key=lambda i: i.row), [40, 7, 3], strict=True
    ):
        shown = await client.get(
            f"/v1/enrollments/{item.enrollment_id}", headers=auth(item.parent_key)
        )
        assert shown.status_code == 200, shown.text
        assert shown.json()["lessons"] == enrollment
        assert shown.json()["refundable_fen"] == shown.json()["amount_fen"]


async def test_chinese_headings_and_a_bom_read_the_same(engine):
    place = await onboarded(engine)
    await first_statement(engine, place.world, opening_fen=50_000)

    outcome = await run_import(
        engine,
        place.world.institution_id,
        csv_file(row(place.course_id, 50_000), header=CHINESE, bom=True),
    )

    assert (outcome.rows, outcome.total_fen) == (1, 50_000)


async def test_one_bad_row_refuses_the_whole_file_naming_the_row(engine):
    place = await onboarded(engine)
    world = place.world
    await first_statement(engine, world, opening_fen=30_000)
    data = csv_file(
        row(place.course_id, 10_000),
        row(place.course_id, 10_000, amount="100.001"),
        row(uuid.uuid4(), 10_000),  # no such course
    )

    with pytest.raises(RowsRefused) as refused:
        await run_import(engine, world.institution_id, data)

    problems = [(p.row, p.column) for p in refused.value.extra["problems"]]
    assert problems == [(3, "unconsumed_yuan"), (4, "course_id")]
    assert "100.001" in refused.value.extra["problems"][0].reason
    assert await enrollments_of(engine, world.institution_id) == []
    assert await escrow_cash(engine, world.institution_id) == 0


async def test_a_total_the_first_statement_does_not_hold_is_refused_saying_by_how_much(engine):
    place = await onboarded(engine)
    world = place.world
    await first_statement(engine, world, opening_fen=100_000)
    data = csv_file(row(place.course_id, 60_000), row(place.course_id, 40_050))

    with pytest.raises(StatementDisagrees) as refused:
        await run_import(engine, world.institution_id, data)

    assert refused.value.extra["difference_fen"] == 50
    assert "0.50 元 more" in refused.value.detail
    assert "1000.00 元" in refused.value.detail
    assert await enrollments_of(engine, world.institution_id) == []
    assert await escrow_cash(engine, world.institution_id) == 0


async def test_without_a_statement_of_the_escrow_account_nothing_is_imported(engine):
    place = await onboarded(engine)

    with pytest.raises(NoFirstStatement, match="reconcile"):
        await run_import(engine, place.world.institution_id, csv_file(row(place.course_id, 100)))

    assert await enrollments_of(engine, place.world.institution_id) == []


async def test_an_unknown_institution_and_an_unreadable_file_are_refused(engine):
    place = await onboarded(engine)
    await first_statement(engine, place.world, opening_fen=100)

    with pytest.raises(InstitutionNotFound):
        await run_import(engine, uuid.uuid4(), csv_file(row(place.course_id, 100)))
    with pytest.raises(OpeningFileInvalid, match="UTF-8"):
        await run_import(engine, place.world.institution_id, "学生".encode("gbk"))
    with pytest.raises(OpeningFileInvalid, match="lacks the column"):
        await run_import(engine, place.world.institution_id, b"student_name\nXiao Ming\n")


async def test_the_same_file_again_changes_nothing(engine):
    place = await onboarded(engine)
    world = place.world
    await first_statement(engine, world, opening_fen=30_000)
    data = csv_file(row(place.course_id, 10_000), row(place.course_id, 20_000))
    first = await run_import(engine, world.institution_id, data)

    again = await run_import(engine, world.institution_id, data)

    assert again.replayed and again.import_id == first.import_id
    assert (again.rows, again.total_fen, again.enrollments) == (2, 30_000, [])
    assert len(await enrollments_of(engine, world.institution_id)) == 2
    assert await escrow_cash(engine, world.institution_id) == 30_000
    imports = await Database(engine).run(
        lambda session: session.scalar(
            select(OpeningImport.rows).where(OpeningImport.institution_id == world.institution_id)
        )
    )
    assert imports == 2


async def test_another_file_of_the_same_students_cannot_double_the_money(engine):
    place = await onboarded(engine)
    world = place.world
    await first_statement(engine, world, opening_fen=10_000)
    await run_import(engine, world.institution_id, csv_file(row(place.course_id, 10_000)))

    # The same student exported again (another file, another hash): the statement's money is
    # all accounted for already.
    with pytest.raises(StatementDisagrees) as refused:
        await run_import(
            engine, world.institution_id, csv_file(row(place.course_id, 10_000, name="王五"))
        )

    assert refused.value.extra["difference_fen"] == 10_000
    assert "earlier imports brought 100.00 元" in refused.value.detail
    assert await escrow_cash(engine, world.institution_id) == 10_000


async def test_a_dry_run_checks_everything_and_writes_nothing(engine):
    place = await onboarded(engine)
    world = place.world
    mismatch = await first_statement(engine, world, opening_fen=10_000)

    outcome = await run_import(
        engine, world.institution_id, csv_file(row(place.course_id, 10_000)), dry_run=True
    )

    assert outcome.dry_run and outcome.rows == 1 and outcome.import_id is None
    assert await enrollments_of(engine, world.institution_id) == []
    still = await Database(engine).run(
        lambda session: session.get(ReconciliationBreak, (world.institution_id, mismatch))
    )
    assert still.status == "open"
    with pytest.raises(StatementDisagrees):
        await run_import(
            engine, world.institution_id, csv_file(row(place.course_id, 9_999)), dry_run=True
        )


async def test_rows_above_the_prepay_cap_are_imported_and_reported(engine):
    place = await onboarded(engine, max_prepaid_lessons=60, max_prepaid_amount_fen=500_000)
    world = place.world
    await first_statement(engine, world, opening_fen=800_000)

    outcome = await run_import(
        engine,
        world.institution_id,
        csv_file(row(place.course_id, 700_000, 80), row(place.course_id, 100_000, 10)),
    )

    assert outcome.rows == 2
    assert [(w.row, w.column) for w in outcome.warnings] == [
        (2, "lessons_remaining"),
        (2, "unconsumed_yuan"),
    ]


async def test_a_student_repeated_in_a_course_is_imported_and_reported(engine):
    place = await onboarded(engine)
    await first_statement(engine, place.world, opening_fen=300)
    twice = valid_id_number()

    outcome = await run_import(
        engine,
        place.world.institution_id,
        csv_file(
            row(place.course_id, 100, 1, id_number=twice),
            row(place.course_id, 100, 1),
            row(place.course_id, 100, 1, id_number=twice),
        ),
    )

    assert outcome.rows == 3
    assert [(w.row, w.reason) for w in outcome.warnings] == [
        (4, "the same student and course as row 2")
    ]


async def test_the_entries_are_opening_balance_entries(engine):
    place = await onboarded(engine)
    await first_statement(engine, place.world, opening_fen=500)
    await run_import(engine, place.world.institution_id, csv_file(row(place.course_id, 500, 5)))

    kinds = await Database(engine).run(
        lambda session: session.scalars(
            select(LedgerEntry.kind).where(LedgerEntry.institution_id == place.world.institution_id)
        )
    )
    assert list(kinds) == [ENTRY_KIND]


@pytest.mark.postgres_only
async def test_imports_of_one_institution_at_once_never_double_the_money(engine):
    place = await onboarded(engine)
    world = place.world
    await first_statement(engine, world, opening_fen=30_000)
    same = csv_file(row(place.course_id, 30_000))
    other = csv_file(row(place.course_id, 30_000, name="王五"))

    outcomes = await asyncio.gather(
        *(run_import(engine, world.institution_id, data) for data in (same, same, other, same)),
        return_exceptions=True,
    )

    imported = [o for o in outcomes if not isinstance(o, Exception) and not o.replayed]
    assert len(imported) == 1
    assert all(
        isinstance(o, StatementDisagrees) or (not isinstance(o, Exception) and o.replayed)
        for o in outcomes
        if o is not imported[0]
    ), outcomes
    assert len(await enrollments_of(engine, world.institution_id)) == 1
    assert await escrow_cash(engine, world.institution_id) == 30_000
