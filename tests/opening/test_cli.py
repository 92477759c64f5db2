"""`prepaid-guard import-opening-balances`: what the operator sees and gets."""

import asyncio
import csv
import stat
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from app import cli
from app.config import get_settings
from app.db.engine import create_engine
from app.db.unit import Database
from app.models import Enrollment
from tests.opening.helpers import Onboarded, csv_file, first_statement, onboarded, row

runner = CliRunner()


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def with_engine(database_url, work):
    async def run():
        engine = create_engine(database_url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def institution_with_statement(database_url, opening_fen) -> Onboarded:
    async def work(engine):
        place = await onboarded(engine)
        await first_statement(engine, place.world, opening_fen)
        return place

    return with_engine(database_url, work)


def enrollment_count(database_url, place) -> int:
    return with_engine(
        database_url,
        lambda engine: Database(engine).run(
            lambda session: session.scalar(
                select(func.count()).where(Enrollment.institution_id == place.world.institution_id)
            )
        ),
    )


def test_a_good_file_is_imported_with_the_parent_keys_written_for_the_operator_alone(
    database_url, fresh_settings, tmp_path
):
    place = institution_with_statement(database_url, 150_000)
    source = tmp_path / "存量.csv"
    source.write_bytes(csv_file(row(place.course_id, 100_000), row(place.course_id, 50_000)))
    keys = tmp_path / "keys.csv"
    args = [
        "import-opening-balances",
        str(source),
        "--institution",
        str(place.world.institution_id),
    ]

    result = runner.invoke(cli.cli, [*args, "--parent-keys", str(keys)])

    assert result.exit_code == 0, result.output
    assert "imported 2 enrollments, 1500.00 元, agreeing with the escrow account's first" in (
        result.stdout
    )
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    with keys.open(encoding="utf-8-sig") as written:
        lines = list(csv.DictReader(written))
    assert [line["row"] for line in lines] == ["2", "3"]
    assert all(line["parent_key"] and line["order_no"].startswith("OB") for line in lines)
    assert enrollment_count(database_url, place) == 2

    again = runner.invoke(cli.cli, [*args, "--parent-keys", str(tmp_path / "again.csv")])
    assert again.exit_code == 0, again.output
    assert "imported before" in again.stdout and "nothing changed" in again.stdout
    assert not (tmp_path / "again.csv").exists()
    assert enrollment_count(database_url, place) == 2


def test_a_bad_row_is_reported_on_screen_and_in_the_report_and_nothing_is_imported(
    database_url, fresh_settings, tmp_path
):
    place = institution_with_statement(database_url, 20_000)
    source = tmp_path / "opening.csv"
    source.write_bytes(
        csv_file(row(place.course_id, 10_000), row(place.course_id, 10_000, amount="-100"))
    )
    report, keys = tmp_path / "refused.csv", tmp_path / "keys.csv"

    result = runner.invoke(
        cli.cli,
        [
            "import-opening-balances",
            str(source),
            "--institution",
            str(place.world.institution_id),
            "--parent-keys",
            str(keys),
            "--report",
            str(report),
        ],
    )

    assert result.exit_code == 1
    assert "opening_rows_refused" in result.stderr
    assert "row 3, unconsumed_yuan: '-100' is not an amount" in result.stderr
    with report.open(encoding="utf-8-sig") as written:
        [_, refused_row] = list(csv.reader(written))
    assert (refused_row[0], refused_row[1], refused_row[3]) == ("3", "unconsumed_yuan", "refused")
    assert not keys.exists()
    assert enrollment_count(database_url, place) == 0


def test_a_dry_run_says_what_would_be_imported_and_a_disagreeing_total_exits_1(
    database_url, fresh_settings, tmp_path
):
    place = institution_with_statement(database_url, 10_000)
    good, short = tmp_path / "good.csv", tmp_path / "short.csv"
    good.write_bytes(csv_file(row(place.course_id, 10_000)))
    short.write_bytes(csv_file(row(place.course_id, 9_000)))
    args = ["--institution", str(place.world.institution_id), "--dry-run"]

    dry = runner.invoke(cli.cli, ["import-opening-balances", str(good), *args])
    assert dry.exit_code == 0, dry.output
    assert "would import 1 enrollments, 100.00 元" in dry.stdout
    refused = runner.invoke(cli.cli, ["import-opening-balances", str(short), *args])
    assert refused.exit_code == 1
    assert "opening_total_disagrees" in refused.stderr
    assert "10.00 元 less" in refused.stderr
    assert enrollment_count(database_url, place) == 0


def test_a_real_import_needs_somewhere_for_the_parent_keys(database_url, fresh_settings, tmp_path):
    place = institution_with_statement(database_url, 10_000)
    source = tmp_path / "opening.csv"
    source.write_bytes(csv_file(row(place.course_id, 10_000)))
    taken = tmp_path / "taken.csv"
    taken.write_text("someone's keys")
    args = [
        "import-opening-balances",
        str(source),
        "--institution",
        str(place.world.institution_id),
    ]

    missing = runner.invoke(cli.cli, args)
    exists = runner.invoke(cli.cli, [*args, "--parent-keys", str(taken)])

    assert missing.exit_code == exists.exit_code == 2
    assert "--parent-keys" in missing.output and "exists already" in exists.output
    assert taken.read_text() == "someone's keys"
    assert enrollment_count(database_url, place) == 0
