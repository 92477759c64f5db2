"""The `prepaid-guard` command: operate a deployment from the shell."""

import asyncio
import contextlib
import json
import logging
import signal
import socket
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer
import uvicorn
from pydantic import ValidationError
from rich.progress import Progress
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from typer.core import TyperGroup

from app.config import Settings, get_settings
from app.db.engine import UnsupportedDatabase, create_engine
from app.db.migrate import upgrade
from app.db.unit import Database
from app.kit import workdays
from app.kit.clock import utcnow
from app.kit.errors import DomainError
from app.kit.money import yuan
from app.ledger import service as ledger
from app.ledger.errors import LedgerNotFound
from app.ledger.types import VerifyReport

if TYPE_CHECKING:
    from app.demo import DemoKeys
    from app.jobs.registry import Job
    from bank_simulator.keys import BankKeys


def _database() -> str:
    return make_url(get_settings().database_url).render_as_string(hide_password=True)


def _missing_table(error: DBAPIError) -> bool:
    # SQLite says so in words; PostgreSQL with SQLSTATE 42P01 (undefined_table).
    return "no such table" in str(error.orig) or getattr(error.orig, "sqlstate", None) == "42P01"


def _operator_problem(error: BaseException) -> str | None:
    """A failure the operator can fix (the configuration, the database's address, its schema), in
    one line; None for anything else, which keeps its traceback (that is a bug to report)."""
    match error:
        case ValidationError() if error.title == Settings.__name__:
            problems = (
                (f"{'.'.join(map(str, e['loc'])).upper()}: " if e["loc"] else "")
                + e["msg"].removeprefix("Value error, ")
                for e in error.errors()
            )
            return "configuration: " + "; ".join(problems)
        case UnsupportedDatabase():
            return f"DATABASE_URL: {error}"
        case ArgumentError():
            return (
                "DATABASE_URL is not a database URL: give postgresql://user:password@host:port/db "
                "or sqlite:///path"
            )
        case DBAPIError() if _missing_table(error):
            return f"the database {_database()} has no schema yet: run `prepaid-guard migrate`"
        case DBAPIError() if error.statement is None:  # raised while connecting
            return f"cannot open the database {_database()}: {error.orig}"
        case ConnectionError() | socket.gaierror() | TimeoutError():  # before the driver speaks
            return f"cannot reach the database {_database()}: {error}"
    return None


class _Commands(TyperGroup):
    def invoke(self, ctx: Any) -> Any:  # Any: typer's Context type differs between versions
        try:
            return super().invoke(ctx)
        except Exception as error:
            problem = _operator_problem(error)
            if problem is None:
                raise
            typer.secho(f"prepaid-guard: {problem}", fg="red", err=True)
            raise typer.Exit(1) from None


cli = typer.Typer(help="PrepaidGuard operations.", no_args_is_help=True, cls=_Commands)


@cli.command()
def migrate() -> None:
    """Bring the database named by DATABASE_URL up to the latest schema."""
    upgrade(get_settings().database_url)
    typer.echo("database schema is up to date")


DEMO_KEYS_FILE = Path("demo-keys.json")
# The demo banks' keys, both halves (the simulator's and the service's), kept so that a restarted
# demo's simulator still speaks with the banks configured in the database. Test keys only.
DEMO_BANKS_FILE = Path("demo-banks.json")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    demo: Annotated[
        bool | None,
        typer.Option(
            "--demo/--no-demo",
            help=(
                "Run the bank simulator beside the API and seed a demo jurisdiction into an empty "
                "database (default: on, but in production)."
            ),
        ),
    ] = None,
    bank_port: Annotated[
        int, typer.Option(help="Port of the bank simulator that plays the demo's banks.")
    ] = 8100,
) -> None:
    """Migrate the database, then serve the API; with the demo, the bank simulator too."""
    settings = get_settings()
    upgrade(settings.database_url)
    if demo if demo is not None else not settings.is_production:
        asyncio.run(_demo(host, port, bank_port, keep_serving=True))
        return
    _say(f"PrepaidGuard API on {_url(host, port)}, its documentation on {_url(host, port)}/docs")
    uvicorn.run("app.main:app", host=host, port=port)


@cli.command("seed-demo")
def seed_demo(
    port: Annotated[int, typer.Option(help="Port for the API while seeding.")] = 8000,
    bank_port: Annotated[int, typer.Option(help="Port for the bank simulator.")] = 8100,
) -> None:
    """Seed the demo jurisdiction into an empty database (serving the API and the bank simulator
    on loopback while it does); write its keys to demo-keys.json."""
    upgrade(get_settings().database_url)
    asyncio.run(_demo("127.0.0.1", port, bank_port, keep_serving=False))


def _demo_banks() -> "dict[str, BankKeys]":
    from app.demo import demo_banks
    from bank_simulator.keys import BankKeys

    if DEMO_BANKS_FILE.exists():
        saved = json.loads(DEMO_BANKS_FILE.read_text())
        return {slug: BankKeys(**keys) for slug, keys in saved.items()}
    banks = demo_banks()
    DEMO_BANKS_FILE.write_text(json.dumps({slug: asdict(keys) for slug, keys in banks.items()}))
    DEMO_BANKS_FILE.chmod(0o600)
    return banks


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """Warnings and errors only, while the demo is seeded: its hundred request lines would bury
    the banner that follows. The service logs every request again after it."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


async def _demo(host: str, port: int, bank_port: int, *, keep_serving: bool) -> None:
    """The API and the bank simulator served together; the demo seeded on an empty database, and
    /readyz not ready until it is."""
    import httpx

    from app.demo import opens_database, read_keys, seed, simulator_config
    from app.health.endpoints import hold_readiness, release_readiness
    from app.main import create_app
    from bank_simulator.app import create_simulator

    settings = get_settings()
    app = create_app(settings)
    hold_readiness(app, "the demo is being seeded")
    stood_in = workdays.stand_in_for_unknown_years(workdays.local_date(utcnow()))
    if stood_in:
        years = ", ".join(map(str, stood_in))
        typer.secho(
            f"no official working-day calendar for {years}: this demo counts it with weekends and "
            "New Year's Day off only (give the published calendar in CALENDAR_FILE)",
            fg="yellow",
            err=True,
        )
    banks = _demo_banks()
    simulator = create_simulator(simulator_config(f"http://{host}:{port}", banks))
    api = uvicorn.Server(uvicorn.Config(app, host=host, port=port))
    bank = uvicorn.Server(uvicorn.Config(simulator, host=host, port=bank_port, log_level="warning"))
    # One Ctrl-C (or SIGTERM) stops both servers cleanly: the signals are ours, not uvicorn's.
    stop = asyncio.Event()
    for server in (api, bank):
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    servers = [asyncio.create_task(bank.serve()), asyncio.create_task(api.serve())]
    try:
        with _quiet_logs():
            while not (api.started and bank.started):
                if any(task.done() for task in servers):
                    return  # a server could not start (port taken?): uvicorn said why
                await asyncio.sleep(0.05)
            async with (
                httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=60) as client,
                httpx.AsyncClient(base_url=f"http://{host}:{bank_port}", timeout=60) as bank_client,
            ):
                db = Database(app.state.engine, settings)
                keys = await seed(db, client, bank_client, banks)
                seeded_now = keys is not None
                if keys is not None:
                    _keep_keys(keys)
                elif (keys := read_keys(DEMO_KEYS_FILE)) and not await opens_database(db, keys):
                    keys = None
        release_readiness(app)
        _banner(keys, seeded_now, host, port, bank_port, serving=keep_serving)
        if keep_serving:
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait([stopping, *servers], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
    finally:
        api.should_exit = bank.should_exit = True
        await asyncio.gather(*servers, return_exceptions=True)


def _keep_keys(keys: "DemoKeys") -> None:
    DEMO_KEYS_FILE.write_text(json.dumps(asdict(keys), indent=2, ensure_ascii=False))
    DEMO_KEYS_FILE.chmod(0o600)  # an operator key: for this user's eyes only


def _say(text: str = "", **style: Any) -> None:
    """For the person at the terminal: on stderr, so that stdout stays the service's JSON log."""
    typer.secho(text, err=True, **style)


def _url(host: str, port: int) -> str:
    # A server on every interface is reached from this machine's browser on the loopback.
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"


def _banner(
    keys: "DemoKeys | None",
    seeded_now: bool,
    host: str,
    port: int,
    bank_port: int,
    *,
    serving: bool,
) -> None:
    """What runs where and which key is whose, in a dozen lines after the demo is seeded."""
    api, bank = _url(host, port), _url(host, bank_port)
    _say()
    if serving:
        _say(f"PrepaidGuard is ready: open {api}/docs", bold=True)
        _say(f"  API             {api}  (database {_database()})")
        _say(f"  bank simulator  {bank}/docs  (plays the demo's banks)")
    elif seeded_now:
        _say("PrepaidGuard demo seeded; `prepaid-guard serve` serves it", bold=True)
    else:
        _say("The database has data already: no demo seeded", bold=True)
    _say()
    if keys is None:
        _say(
            f"  No demo key in {DEMO_KEYS_FILE.resolve()} opens this database: set ADMIN_API_KEY "
            "to a secret of your own and use it as the operator's key."
        )
    else:
        where = "written to" if seeded_now else "seeded earlier, kept in"
        _say(f"  Demo keys ({where} {DEMO_KEYS_FILE.resolve()}); in /docs press Authorize:")
        for role, key, whose in (
            ("operator", keys.admin, "everything"),
            ("regulator", keys.regulator, "the demo county"),
            ("institution", keys.institution, "the demo school"),
            ("parent", keys.parent_active, "an active enrollment"),
        ):
            _say(f"    {role:<12} {key}  {whose}")
    if serving:
        _say()
        _say("  The service logs JSON lines on stdout from here on. Ctrl-C stops both servers.")
    _say()


@cli.command("check-config")
def check_config() -> None:
    """Print the settings in effect, secrets masked."""
    settings = get_settings()
    for name, value in settings.model_dump().items():
        if name == "database_url":
            value = make_url(value).render_as_string(hide_password=True)
        # SecretStr prints as asterisks.
        typer.echo(f"{name} = {value}")
    if years := workdays.load_calendar_file(settings.calendar_file):
        typer.echo(f"working-day calendars from CALENDAR_FILE: {', '.join(map(str, years))}")


@cli.command("verify-ledger")
def verify_ledger(
    institution_ids: Annotated[
        list[UUID] | None, typer.Argument(help="Institutions to check; all of them when omitted.")
    ] = None,
) -> None:
    """Check ledgers: every hash chain intact and in agreement with the published checkpoints, every
    balance, transfer and enrollment equal to its journal.

    Names the first thing wrong in each institution that fails (an altered or missing entry, a
    checkpoint the journal no longer matches, a transfer or an enrollment that disagrees). Exits 1
    when one fails, else 2 when an institution named has no ledger, else 0."""
    reports, unknown = asyncio.run(_verify(institution_ids))
    broken = [report for report in reports if not report.intact]
    for report in broken:
        typer.secho(f"{report.institution_id}: {report.problem}", fg=typer.colors.RED, err=True)
    for institution_id in unknown:
        typer.secho(f"{institution_id}: no such institution has a ledger", fg="red", err=True)
    entries = sum(report.entries_checked for report in reports)
    typer.echo(
        f"{len(reports)} institutions, {entries} entries checked: "
        + (f"{len(broken)} not intact" if broken else "all intact")
    )
    raise typer.Exit(1 if broken else 2 if unknown else 0)


@cli.command("reconcile")
def reconcile(
    file: Annotated[Path, typer.Argument(help="The statement file, in the bank's format.")],
    bank: Annotated[str, typer.Option("--bank", help="The bank's slug, e.g. ums.")],
    header: Annotated[
        list[str] | None,
        typer.Option(
            help="A header the bank sent with the file, as 'Name: value' (its signature: "
            "X-File-Signature, X-Signature or the X-GM-* ones); repeat it for each. Without any, "
            "the file is taken as handed over by the operator, unsigned."
        ),
    ] = None,
) -> None:
    """Reconcile one bank statement file handed over by other means than the bank's API: stored,
    read and recorded exactly as `POST /v1/banks/{slug}/statements` would, with a progress bar."""
    headers: dict[str, str] = {}
    for given in header or []:
        name, separator, value = given.partition(":")
        if not separator or not name.strip():
            raise typer.BadParameter(f"{given!r} is not 'Name: value'", param_hint="--header")
        headers[name.strip().lower()] = value.strip()
    try:
        body = file.read_bytes()
    except OSError as error:
        typer.secho(f"prepaid-guard: cannot read {file}: {error.strerror}", fg="red", err=True)
        raise typer.Exit(1) from None
    try:
        run, breaks, replayed = asyncio.run(_reconcile(bank, body, headers))
    except DomainError as refusal:  # a bad signature, a file that does not parse, ...
        typer.secho(f"{file}: {refusal.code}: {refusal.detail}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"{file}: {'already reconciled, ' if replayed else ''}run {run.id} of account "
        f"{run.account_no} on {run.statement_date}: {run.lines} lines, {run.status}"
    )
    for found in breaks:
        typer.echo(f"  {found.type}: {found.detail}")
    raise typer.Exit(1 if breaks else 0)


CHUNK_BYTES = 1024 * 1024


async def _reconcile(slug: str, body: bytes, headers: dict[str, str]) -> Any:
    from app.banks.protocol import InboundRequest
    from app.reconciliation.intake import receive_statement
    from app.reconciliation.service import breaks_of

    settings = get_settings()
    engine = create_engine(settings.database_url)
    db = Database(engine, settings)
    request = InboundRequest(headers=headers, body=body, received_at=utcnow())
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("reading the statement", total=len(body))

            def chunks() -> Iterator[bytes]:
                for start in range(0, len(body), CHUNK_BYTES):
                    chunk = body[start : start + CHUNK_BYTES]
                    yield chunk
                    progress.advance(task, len(chunk))

            intake = await receive_statement(db, slug, request, None, chunks, vouched=not headers)
        breaks = await db.run(lambda session: breaks_of(session, [intake.run]))
        return intake.run, breaks[intake.run.id], intake.replayed
    finally:
        await engine.dispose()


@cli.command("import-opening-balances")
def import_opening_balances(
    file: Annotated[
        Path, typer.Argument(help="The CSV of opening balances (docs/opening-balances.md).")
    ],
    institution: Annotated[UUID, typer.Option("--institution", help="The institution's id.")],
    parent_keys: Annotated[
        Path | None,
        typer.Option(
            help="Where to write each imported enrollment's parent key (CSV, readable by this "
            "user only; the keys are shown nowhere else). Required unless --dry-run; never "
            "overwritten."
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Also write the refused rows and the warnings here, as CSV."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the file and the statement; write nothing.")
    ] = False,
) -> None:
    """Import money collected before onboarding (存量) as active enrollments with opening balances,
    all or nothing, checked against the escrow account's first statement. Prints the refused rows
    (row, column, reason) and the rows above the prepay cap. The same file again changes nothing.
    Exits 1 when the import is refused."""
    from app.opening.service import ImportOutcome

    if not dry_run and parent_keys is None:
        raise typer.BadParameter(
            "give --parent-keys FILE (or --dry-run)", param_hint="--parent-keys"
        )
    if parent_keys is not None and parent_keys.exists():
        raise typer.BadParameter(f"{parent_keys} exists already", param_hint="--parent-keys")
    try:
        data = file.read_bytes()
    except OSError as error:
        typer.secho(f"prepaid-guard: cannot read {file}: {error.strerror}", fg="red", err=True)
        raise typer.Exit(1) from None
    try:
        outcome: ImportOutcome = asyncio.run(
            _import_opening(institution, data, file.name, dry_run, parent_keys)
        )
    except BaseException as failure:
        # A key file written for a transaction that did not commit names no key: removed.
        if parent_keys is not None:
            parent_keys.unlink(missing_ok=True)
        if not isinstance(failure, DomainError):
            raise
        refusal = failure
        problems = refusal.extra.get("problems", [])
        warnings = refusal.extra.get("warnings", [])
        _opening_report(report, problems, warnings)
        typer.secho(f"{file}: {refusal.code}: {refusal.detail}", fg="red", err=True)
        for problem in problems:
            typer.secho(
                f"  row {problem.row}, {problem.column or 'row'}: {problem.reason}",
                fg="red",
                err=True,
            )
        raise typer.Exit(1) from None
    _opening_report(report, [], outcome.warnings)
    for warning in outcome.warnings:
        typer.secho(
            f"  row {warning.row}, {warning.column}: {warning.reason} (imported all the same)",
            fg="yellow",
            err=True,
        )
    if outcome.replayed:
        typer.echo(
            f"{file}: imported before (import {outcome.import_id}, {outcome.rows} rows, "
            f"{yuan(outcome.total_fen)} 元): nothing changed"
        )
        return
    done = "would import" if dry_run else "imported"
    typer.echo(
        f"{file}: {done} {outcome.rows} enrollments, {yuan(outcome.total_fen)} 元, agreeing with "
        f"the escrow account's first statement of {outcome.check.statement_date if outcome.check else '?'}"
        + ("" if dry_run else f" (import {outcome.import_id}; parent keys in {parent_keys})")
    )


def _opening_report(path: Path | None, problems: list[Any], warnings: list[Any]) -> None:
    if path is None:
        return
    import csv

    with path.open("w", newline="", encoding="utf-8-sig") as out:
        writer = csv.writer(out)
        writer.writerow(["row", "column", "reason", "outcome"])
        for found, outcome in ((problems, "refused"), (warnings, "warning")):
            writer.writerows([p.row, p.column, p.reason, outcome] for p in found)


async def _import_opening(
    institution_id: UUID, data: bytes, file_name: str, dry_run: bool, parent_keys: Path | None
) -> Any:
    from app.opening.service import import_opening_balances

    settings = get_settings()
    engine = create_engine(settings.database_url)
    secret = settings.secret_key.get_secret_value()
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("importing opening balances", total=None)

            async def work(session: Any) -> Any:
                outcome = await import_opening_balances(
                    session,
                    secret,
                    institution_id,
                    data,
                    file_name,
                    utcnow(),
                    dry_run=dry_run,
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                )
                if outcome.enrollments:
                    assert parent_keys is not None
                    progress.update(task, description="writing the parent keys")
                    _write_parent_keys(parent_keys, outcome.enrollments)
                return outcome

            return await Database(engine, settings).run(work)
    finally:
        await engine.dispose()


def _write_parent_keys(path: Path, enrollments: list[Any]) -> None:
    import csv
    import os

    # The command refused a file that existed before it began: one here now is this import's own,
    # from an attempt the database made it retry (a serialisation failure), whose keys never were.
    path.unlink(missing_ok=True)
    # Created readable by this user only, before a key is in it.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(descriptor, "w", newline="", encoding="utf-8-sig") as out:
        writer = csv.writer(out)
        writer.writerow(["row", "enrollment_id", "order_no", "student_name", "parent_key"])
        writer.writerows(
            [e.row, e.enrollment_id, e.order_no, e.student_name, e.parent_key] for e in enrollments
        )


@cli.command("run-job")
def run_job(
    job: Annotated[str, typer.Argument(help="One of the scheduled jobs, e.g. release_payouts.")],
) -> None:
    """Run a scheduled job now, at the present moment (for cron or a scheduler)."""
    from app.jobs.registry import JOBS

    if job not in JOBS:
        typer.secho(f"no job {job!r}; jobs are {', '.join(sorted(JOBS))}", fg="red", err=True)
        raise typer.Exit(2)
    from app.audit.context import Actor, acting_as

    with acting_as(Actor("job", job)):  # what it moves in the ledger, the job moved
        handled = asyncio.run(_run_job(JOBS[job]))
    typer.echo(f"{job}: handled {handled}")


async def _run_job(job: "Job") -> int:
    settings = get_settings()
    workdays.load_calendar_file(settings.calendar_file)
    engine = create_engine(settings.database_url)
    try:
        return await job(Database(engine, settings), utcnow())
    finally:
        await engine.dispose()


async def _verify(institution_ids: list[UUID] | None) -> tuple[list[VerifyReport], list[UUID]]:
    """The reports of the institutions verified, and those named that have no ledger."""
    engine = create_engine(get_settings().database_url)
    try:
        if not institution_ids:
            async with engine.connect() as connection:
                institution_ids = await ledger.institutions(connection)
        reports, unknown = [], []
        with Progress(transient=True) as progress:
            task = progress.add_task("verifying ledgers", total=len(institution_ids))
            for institution_id in institution_ids:
                # One short read transaction per institution, never one across all of them.
                async with engine.connect() as connection:
                    try:
                        reports.append(await ledger.verify(connection, institution_id))
                    except LedgerNotFound:
                        unknown.append(institution_id)
                progress.advance(task)
        return reports, unknown
    finally:
        await engine.dispose()


def main() -> None:
    cli()
