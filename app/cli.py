"""The `prepaid-guard` command: operate a deployment from the shell."""

import asyncio
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import typer
import uvicorn
from rich.progress import Progress
from sqlalchemy.engine import make_url

from app.config import get_settings
from app.db.engine import create_engine
from app.db.migrate import upgrade
from app.db.unit import Database
from app.kit.clock import utcnow
from app.ledger import service as ledger
from app.ledger.types import VerifyReport

if TYPE_CHECKING:
    from app.demo import DemoKeys
    from app.jobs.registry import Job

cli = typer.Typer(help="PrepaidGuard operations.", no_args_is_help=True)


@cli.command()
def migrate() -> None:
    """Bring the database named by DATABASE_URL up to the latest schema."""
    upgrade(get_settings().database_url)
    typer.echo("database schema is up to date")


DEMO_KEYS_FILE = Path("demo-keys.json")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    demo: Annotated[
        bool | None,
        typer.Option(
            "--demo/--no-demo",
            help="Seed a demo jurisdiction into an empty database (default: on, but in production).",
        ),
    ] = None,
) -> None:
    """Migrate the database, seed the demo on an empty one, then serve the API."""
    migrate()
    if demo if demo is not None else not get_settings().is_production:
        seed_demo()
    uvicorn.run("app.main:app", host=host, port=port)


@cli.command("seed-demo")
def seed_demo() -> None:
    """Seed the demo jurisdiction into an empty database; write its keys to demo-keys.json."""
    upgrade(get_settings().database_url)
    keys = asyncio.run(_seed_demo())
    if keys is None:
        typer.echo("the database has data already: no demo seeded")
        return
    DEMO_KEYS_FILE.write_text(json.dumps(asdict(keys), indent=2, ensure_ascii=False))
    typer.echo(
        f"demo seeded; its API keys are in {DEMO_KEYS_FILE.resolve()}\n"
        f"  operator (admin): {keys.admin}\n  regulator: {keys.regulator}\n"
        f"  institution: {keys.institution}\n  parent: {keys.parent_active}"
    )


async def _seed_demo() -> "DemoKeys | None":
    from app.demo import seed
    from app.main import create_app

    app = create_app(get_settings())
    async with app.router.lifespan_context(app):
        return await seed(app)


@cli.command("check-config")
def check_config() -> None:
    """Print the settings in effect, secrets masked."""
    settings = get_settings()
    for name, value in settings.model_dump().items():
        if name == "database_url":
            value = make_url(value).render_as_string(hide_password=True)
        # SecretStr prints as asterisks.
        typer.echo(f"{name} = {value}")


@cli.command("verify-ledger")
def verify_ledger(
    institution_ids: Annotated[
        list[UUID] | None, typer.Argument(help="Institutions to check; all of them when omitted.")
    ] = None,
) -> None:
    """Check journals: every hash chain intact and every balance equal to its journal.

    Exits 1 and names the first altered or missing entry of each institution that fails."""
    reports = asyncio.run(_verify(institution_ids))
    broken = [report for report in reports if not report.intact]
    for report in broken:
        typer.secho(f"{report.institution_id}: {report.problem}", fg=typer.colors.RED, err=True)
    entries = sum(report.entries_checked for report in reports)
    typer.echo(
        f"{len(reports)} institutions, {entries} entries checked: "
        + (f"{len(broken)} not intact" if broken else "all intact")
    )
    raise typer.Exit(1 if broken else 0)


@cli.command("run-job")
def run_job(
    job: Annotated[str, typer.Argument(help="One of the scheduled jobs, e.g. release_payouts.")],
) -> None:
    """Run a scheduled job now, at the present moment (for cron or a scheduler)."""
    from app.jobs.registry import JOBS

    if job not in JOBS:
        typer.secho(f"no job {job!r}; jobs are {', '.join(sorted(JOBS))}", fg="red", err=True)
        raise typer.Exit(2)
    handled = asyncio.run(_run_job(JOBS[job]))
    typer.echo(f"{job}: handled {handled}")


async def _run_job(job: "Job") -> int:
    settings = get_settings()
    engine = create_engine(settings.database_url)
    try:
        return await job(Database(engine, settings), utcnow())
    finally:
        await engine.dispose()


async def _verify(institution_ids: list[UUID] | None) -> list[VerifyReport]:
    engine = create_engine(get_settings().database_url)
    try:
        if not institution_ids:
            async with engine.connect() as connection:
                institution_ids = await ledger.institutions(connection)
        reports = []
        with Progress(transient=True) as progress:
            task = progress.add_task("verifying journals", total=len(institution_ids))
            for institution_id in institution_ids:
                # One short read transaction per institution, never one across all of them.
                async with engine.connect() as connection:
                    reports.append(await ledger.verify(connection, institution_id))
                progress.advance(task)
        return reports
    finally:
        await engine.dispose()


def main() -> None:
    cli()
