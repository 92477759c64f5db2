"""`prepaid-guard reconcile FILE --bank SLUG`: a statement handed over by other means is recorded
exactly as one the bank posts; one that does not parse is named by its line and records nothing."""

import asyncio

from sqlalchemy import func, select
from typer.testing import CliRunner

from app import cli
from app.db.unit import Database
from app.kit.clock import SHANGHAI, utcnow
from app.models import ReconciliationRun
from tests.banks.voices import alerts, configured_bank

runner = CliRunner()


def _ums_file(account_no: str, opening: int, closing: int, lines: list[str]) -> bytes:
    day = utcnow().astimezone(SHANGHAI).strftime("%Y%m%d")
    credits = sum(int(line.split("|")[4]) for line in lines if line.split("|")[3] == "C")
    debits = sum(int(line.split("|")[4]) for line in lines if line.split("|")[3] == "D")
    rows = [f"H|G1|{account_no}|{day}|{opening}|{closing}|{len(lines)}", *lines]
    rows.append(f"T|{credits}|{debits}")
    return ("\n".join(rows) + "\n").encode()


async def _runs(engine, institution_id) -> int:
    return await Database(engine).run(
        lambda session: session.scalar(
            select(func.count())
            .select_from(ReconciliationRun)
            .where(ReconciliationRun.institution_id == institution_id)
        )
    )


async def test_a_handed_over_statement_is_reconciled_once(engine, client, tmp_path):
    bank = await configured_bank(engine, client, "ums")
    statement = tmp_path / "statement.txt"
    statement.write_bytes(_ums_file(bank.world.escrow_account_no, 0, 0, []))

    first = await asyncio.to_thread(
        runner.invoke, cli.cli, ["reconcile", str(statement), "--bank", bank.slug]
    )
    again = await asyncio.to_thread(
        runner.invoke, cli.cli, ["reconcile", str(statement), "--bank", bank.slug]
    )

    assert first.exit_code == 0, first.output
    assert "0 lines, clean" in first.output
    assert again.exit_code == 0 and "already reconciled" in again.output
    assert await _runs(engine, bank.world.institution_id) == 1


async def test_a_file_that_does_not_parse_names_its_line_and_records_nothing(
    engine, client, tmp_path
):
    bank = await configured_bank(engine, client, "ums")
    statement = tmp_path / "statement.txt"
    day = utcnow().astimezone(SHANGHAI).strftime("%Y%m%d")
    account = bank.world.escrow_account_no
    statement.write_bytes(
        f"H|G1|{account}|{day}|0|500|1\nD|S1|{day}120000|C|abc|500|||PG1|\nT|500|0\n".encode()
    )

    result = await asyncio.to_thread(
        runner.invoke, cli.cli, ["reconcile", str(statement), "--bank", bank.slug]
    )

    assert result.exit_code == 1
    assert "statement_malformed" in result.output and "line 2" in result.output
    assert await _runs(engine, bank.world.institution_id) == 0


async def test_money_out_without_an_instruction_is_a_red_alert_pointing_at_the_file(
    engine, client, tmp_path
):
    bank = await configured_bank(engine, client, "ums")
    day = utcnow().astimezone(SHANGHAI).strftime("%Y%m%d")
    account = bank.world.escrow_account_no
    statement = tmp_path / "statement.txt"
    statement.write_bytes(
        f"H|G1|{account}|{day}|0|-500|1\n"
        f"D|S77|{day}101500|D|500|-500|6222000011112222|someone|NOT-OURS|\n"
        f"T|0|500\n".encode()
    )

    result = await asyncio.to_thread(
        runner.invoke, cli.cli, ["reconcile", str(statement), "--bank", bank.slug]
    )

    assert result.exit_code == 1, result.output
    assert "unauthorized_debit" in result.output
    raised = await alerts(engine, bank.world.institution_id)
    # The bank's balance (-500 fen) is below what students are owed too: a shortfall.
    assert {(each.kind, each.level) for each in raised} == {
        ("unauthorized_debit", "RED"),
        ("shortfall", "RED"),
    }
    [alert] = [each for each in raised if each.kind == "unauthorized_debit"]
    assert alert.bank_message_id is not None  # the stored statement file, as evidence
