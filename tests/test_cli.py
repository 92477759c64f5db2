"""The prepaid-guard command."""

import asyncio
import json
import socket
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from app import cli, demo
from app.config import get_settings
from app.db.engine import create_engine
from tests.ledger.conftest import db_id, open_books, payment, post, tamper

runner = CliRunner()


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """Settings read again from the environment the test sets, and forgotten after it."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_check_config_prints_settings_with_secrets_masked(monkeypatch, fresh_settings):
    monkeypatch.setenv("ADMIN_API_KEY", "bootstrap-key-not-to-be-printed")
    monkeypatch.setenv("DATABASE_URL", "postgresql://svc:db-password@db.internal:5432/guard")

    result = runner.invoke(cli.cli, ["check-config"])

    assert result.exit_code == 0, result.output
    assert "bootstrap-key-not-to-be-printed" not in result.output
    assert "db-password" not in result.output
    assert "database_url = postgresql://svc:***@db.internal:5432/guard" in result.output
    assert "idempotency_ttl_hours = 24" in result.output


def test_check_config_lists_the_calendar_years_the_file_adds(
    monkeypatch, fresh_settings, tmp_path, calendars
):
    path = tmp_path / "calendar.json"
    path.write_text('{"2099": {"holidays": ["2099-01-01"], "workdays": []}}')
    monkeypatch.setenv("CALENDAR_FILE", str(path))

    result = runner.invoke(cli.cli, ["check-config"])

    assert result.exit_code == 0, result.output
    assert "working-day calendars from CALENDAR_FILE: 2099" in result.output


def test_migrate_brings_the_database_to_the_latest_schema(database_url, fresh_settings):
    result = runner.invoke(cli.cli, ["migrate"])

    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_serve_migrates_then_runs_the_server(monkeypatch, fresh_settings):
    calls: list[tuple] = []
    monkeypatch.setattr(cli, "upgrade", lambda url: calls.append(("upgrade", url)))
    monkeypatch.setattr(
        cli.uvicorn, "run", lambda app, **options: calls.append(("run", app, options))
    )

    result = runner.invoke(cli.cli, ["serve", "--host", "0.0.0.0", "--port", "9000", "--no-demo"])

    assert result.exit_code == 0, result.output
    assert calls == [
        ("upgrade", get_settings().database_url),
        ("run", "app.main:app", {"host": "0.0.0.0", "port": 9000}),
    ]
    # Where to go, for the person at the terminal; stdout stays the JSON log's.
    assert result.stdout == ""
    assert "http://127.0.0.1:9000/docs" in result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_seed_demo_holds_readiness_shows_the_keys_and_a_restart_says_where_they_are(
    monkeypatch, fresh_settings, tmp_path
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'demo.db'}")
    ready_while_seeding: list[int] = []
    seed = demo.seed

    async def seed_asking_readyz(db, client, bank, banks):
        ready_while_seeding.append((await client.get("/readyz")).status_code)
        return await seed(db, client, bank, banks)

    monkeypatch.setattr(demo, "seed", seed_asking_readyz)
    ports = ["--port", str(_free_port()), "--bank-port", str(_free_port())]

    first = runner.invoke(cli.cli, ["seed-demo", *ports])

    assert first.exit_code == 0, first.output
    assert ready_while_seeding == [503]  # /readyz said "not ready" until the demo was seeded
    keys_file = tmp_path / "demo-keys.json"
    keys = json.loads(keys_file.read_text())
    assert keys_file.stat().st_mode & 0o777 == 0o600
    assert f"written to {keys_file}" in first.stderr
    for role, key in [
        ("operator", keys["admin"]),
        ("regulator", keys["regulator"]),
        ("institution", keys["institution"]),
        ("parent", keys["parent_active"]),
    ]:
        assert f"{role:<12} {key}" in first.stderr
    assert '"app.request"' not in first.stdout  # the seeding's hundred request lines stay out

    again = runner.invoke(cli.cli, ["seed-demo", *ports])

    assert again.exit_code == 0, again.output
    assert "The database has data already: no demo seeded" in again.stderr
    assert f"seeded earlier, kept in {keys_file}" in again.stderr
    assert f"{'operator':<12} {keys['admin']}" in again.stderr

    keys_file.write_text(json.dumps({**keys, "admin": "pgk_of_another_database"}))
    elsewhere = runner.invoke(cli.cli, ["seed-demo", *ports])
    assert f"No demo key in {keys_file} opens this database" in elsewhere.stderr


def test_the_serving_banner_says_where_to_go(monkeypatch, fresh_settings, capsys):
    keys = demo.DemoKeys("pgk_a", "pgk_r", "pgk_i", "pgk_p", "pgk_p2", "id", "id")

    cli._banner(keys, True, "0.0.0.0", 8000, 8100, serving=True)

    banner = capsys.readouterr().err
    assert "PrepaidGuard is ready: open http://127.0.0.1:8000/docs" in banner
    assert "bank simulator  http://127.0.0.1:8100/docs" in banner
    assert "operator     pgk_a" in banner and "parent       pgk_p " in banner
    assert "JSON lines on stdout" in banner and "Ctrl-C" in banner
    assert len(banner.splitlines()) < 15


def test_verify_ledger_names_the_altered_entry(database_url, fresh_settings):
    async def books_with_one_altered():
        engine = create_engine(database_url)
        intact, altered = await open_books(engine), await open_books(engine)
        for books in (intact, altered):
            for n in range(3):
                await post(engine, books, payment(f"p{n}", books, 100))
        await tamper(
            engine,
            "UPDATE ledger_postings SET amount_fen = -amount_fen"
            " WHERE institution_id = :i AND entry_seq = 2",
            i=db_id(engine, altered.institution_id),
        )
        await engine.dispose()
        return intact, altered

    intact, altered = asyncio.run(books_with_one_altered())

    checked = runner.invoke(cli.cli, ["verify-ledger", str(intact.institution_id)])
    assert checked.exit_code == 0, checked.output
    assert "1 institutions, 3 entries checked: all intact" in checked.output

    result = runner.invoke(
        cli.cli, ["verify-ledger", str(intact.institution_id), str(altered.institution_id)]
    )
    assert result.exit_code == 1
    assert f"{altered.institution_id}: entry 2 was altered" in result.output
    assert "2 institutions, 4 entries checked: 1 not intact" in result.output  # 3 + the 1 before


def test_run_job_runs_a_scheduled_job(database_url, fresh_settings):
    result = runner.invoke(cli.cli, ["run-job", "auto_approve_refunds"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("auto_approve_refunds: handled ")

    unknown = runner.invoke(cli.cli, ["run-job", "make_coffee"])
    assert unknown.exit_code == 2
    assert "release_payouts" in unknown.output


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://guard@db/guard", "DATABASE_URL: unsupported database 'mysql'"),
        ("not a url", "DATABASE_URL is not a database URL"),
        ("sqlite:////no/such/directory/guard.db", "DATABASE_URL: no directory /no/such/directory"),
        (
            "postgresql://guard:db-password@127.0.0.1:1/guard",  # nothing listens on port 1
            "cannot reach the database postgresql://guard:***@127.0.0.1:1/guard",
        ),
    ],
)
@pytest.mark.parametrize("command", [["migrate"], ["run-job", "release_payouts"]])
def test_a_bad_database_url_is_one_clear_line(monkeypatch, fresh_settings, url, said, command):
    monkeypatch.setenv("DATABASE_URL", url)

    result = runner.invoke(cli.cli, command)

    assert result.exit_code == 1
    assert result.output.startswith(f"prepaid-guard: {said}"), result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert "db-password" not in result.output


def test_an_unmigrated_database_says_to_migrate(monkeypatch, fresh_settings, tmp_path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")

    result = runner.invoke(cli.cli, ["run-job", "release_payouts"])

    assert result.exit_code == 1
    assert result.output == (
        f"prepaid-guard: the database sqlite:///{tmp_path / 'empty.db'} has no schema yet: "
        "run `prepaid-guard migrate`\n"
    )


def test_production_without_its_secret_is_one_clear_line(monkeypatch, fresh_settings):
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)

    for command in (["check-config"], ["migrate"], ["serve"]):
        result = runner.invoke(cli.cli, command)
        assert result.exit_code == 1, result.output
        assert result.output == (
            "prepaid-guard: configuration: SECRET_KEY must be set to a random string of 32 "
            "characters or more\n"
        )


def test_a_bug_keeps_its_traceback(monkeypatch, fresh_settings):
    monkeypatch.setattr(cli, "_run_job", lambda job: (_ for _ in ()).throw(KeyError("bug")))

    result = runner.invoke(cli.cli, ["run-job", "release_payouts"])

    assert isinstance(result.exception, KeyError)  # not hidden behind a friendly line
