"""Reconciling a statement of a million lines end to end, on PostgreSQL (issue 10's target).

    python -m bench.reconcile --lines 1000000 --banks ums --out bench/reconcile.json

Drops and recreates the database, migrates it, configures each bank (keys made here) with one
institution whose escrow account it holds, and gives the ledger that account's day (today in
Beijing, so that the ledger's balance at the day's cut-off is the one posted here): `--lines`
movements of `bench.statement_parse.Day`, spread over the day, every `--payout-every`-th a payout
and the others payments. A payment is an enrollment paid with the line's serial as its
`payment_reference` and the line's order number; a payout is an instruction sent and succeeded
that day, the line quoting its id. They are loaded with COPY, and the day's net is posted to the
escrow cash account through the ledger service (against own funds), so that the ledger closes the
day where the bank does. The matching statement file is written in the bank's format. None of
this is timed.

Then, for each bank, in the same run:
- *reconcile*: `prepaid-guard reconcile FILE --bank SLUG` in a child process, as an operator runs
  it: the file read, stored raw in `bank_messages`, read and matched against the ledger's
  movements of the day, the run recorded. Wall time from start to exit, and the child's peak
  resident memory (its `ru_maxrss`). The run must be clean, of `--lines` lines.
- *COPY floor*: the same lines sent to PostgreSQL with a plain `COPY` into a scratch table of text
  columns (ums and gmbank: one column per field of the detail lines, parsed by PostgreSQL, GBK
  decoded by it; camt.053: one column per line of XML), committed: what merely landing the
  statement's lines in the database costs.

`--profile FILE` instead runs the reconciliation of the first bank in this process under cProfile
and writes the statistics to FILE.
"""

import argparse
import asyncio
import cProfile
import io
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.banks.config import configure_bank
from app.db import migrate
from app.db.engine import create_engine
from app.db.unit import Database
from app.jurisdictions.profile import RuleProfile
from app.kit.clock import utcnow
from app.kit.workdays import local_date
from app.ledger import service as ledger
from app.ledger.books import institution_books
from app.ledger.types import EntryDraft
from app.models import (
    Course,
    Institution,
    Jurisdiction,
    ReconciliationBreak,
    ReconciliationRun,
)
from bank_simulator.keys import bank_keys
from bench.ledger_throughput import recreate_database
from bench.statement_parse import Day, reference, serial, synthetic

JURISDICTION = "BREC"


def _escrow_account() -> str:
    return f"62220{secrets.randbelow(10**11):011d}"


async def prepare(db: Database, secret_key: str, adapter: str, spec: Day) -> None:
    """The bank, its institution (whose escrow account is the day's) and the ledger's day."""
    day = spec.day
    slug = f"{adapter[:3]}-bench"
    keys = bank_keys(adapter)
    await db.run(
        lambda session: configure_bank(
            session, secret_key, slug, adapter, "http://127.0.0.1:9/unused", keys.service_config
        )
    )
    institution_id, course_id = uuid.uuid4(), uuid.uuid4()
    now = utcnow()

    async def institution(session: Any) -> None:
        session.add(
            Institution(
                id=institution_id,
                name=f"Bench school at {slug}",
                uscc=f"91{secrets.randbelow(10**16):016d}",
                license_no=f"L-{slug}",
                category="non_subject",
                jurisdiction_code=JURISDICTION,
                bank_slug=slug,
                escrow_account_no=spec.account_no,
                basic_account_no=f"6228{secrets.randbelow(10**12):012d}",
                basic_account_name=f"Bench school at {slug}",
                created_at=now,
                updated_at=now,
            )
        )
        await session.flush()
        session.add(
            Course(
                institution_id=institution_id,
                id=course_id,
                name="Bench",
                category="non_subject",
                lesson_price_fen=100,
                starts_on=day,
                ends_on=day + timedelta(days=365),
                created_at=now,
            )
        )
        await session.flush()
        credits, debits = spec.totals()
        connection = await session.connection()
        books = await institution_books(connection, institution_id)
        # The day's payments less its payouts, in one entry: the escrow account ends the day at
        # the statement's closing balance (it opens at zero).
        await ledger.post(
            connection,
            institution_id,
            EntryDraft.transfer(
                f"bench:{day}",
                "bench_day",
                books.escrow_cash.id,
                books.own_funds.id,
                credits - debits,
                memo="the bench's day of payments and payouts, summed",
            ),
        )

    await db.run(institution)
    enrollments, instructions = [], []
    for n, at, credit, amount, _ in spec.movements():
        if credit:
            enrollments.append(
                (
                    *(institution_id, uuid.uuid4(), course_id, reference(n, True), "Bench"),
                    *("0" * 64, "110***********0017", "Bench parent", "13800138000", 1),
                    *(amount, amount, False, "active", amount, 0, 0, 0, 0, 0, 0, 0),
                    *(at + timedelta(days=1), at, now, now, serial(n), day, day + timedelta(90)),
                )
            )
        else:
            instructions.append(
                (
                    *(institution_id, reference(n, False), "payout", uuid.uuid4(), amount),
                    *("6228", "Bench school", "succeeded", 1, at, at, at, slug, "PAYOUT"),
                )
            )
    async with db.engine.begin() as connection:
        raw = await _driver(connection)
        await raw.copy_records_to_table(
            "enrollments",
            records=enrollments,
            columns=[
                *("institution_id", "id", "course_id", "order_no", "student_name"),
                *("student_id_hash", "student_id_masked", "payer_name", "payer_phone"),
                *("lessons", "lesson_price_fen", "amount_fen", "loan_funded", "status"),
                *("paid_fen", "lessons_confirmed", "lessons_pending", "lessons_disputed"),
                *("confirmed_fen", "pending_fen", "disputed_fen", "refunded_fen"),
                *("expires_at", "paid_at", "created_at", "updated_at", "payment_reference"),
                *("valid_from", "valid_until"),
            ],
        )
        await raw.copy_records_to_table(
            "instructions",
            records=instructions,
            columns=[
                *("institution_id", "id", "kind", "transfer_id", "amount_fen"),
                *("payee_account_no", "payee_name", "status", "attempts", "created_at"),
                *("sent_at", "resolved_at", "bank_slug", "memo"),
            ],
        )
        await raw.execute("ANALYZE enrollments; ANALYZE instructions")


async def _driver(connection: AsyncConnection) -> Any:
    """The asyncpg connection under SQLAlchemy's, for COPY."""
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None
    return raw


# The detail lines of each format, as PostgreSQL's COPY takes them: (columns, options, the lines'
# bytes out of the whole file).
def _floor_input(adapter: str, body: bytes) -> tuple[int, dict[str, Any], bytes]:
    if adapter == "ums":  # between the H line and the T line
        start, end = body.index(b"\n") + 1, body.rindex(b"\n", 0, len(body) - 1) + 1
        return 10, {"format": "text", "delimiter": "|"}, body[start:end]
    if adapter == "gmbank":  # between the header row and the two balance rows
        start, end = body.index(b"\n") + 1, body.rindex("期初余额".encode("gbk"))
        return 11, {"format": "csv", "encoding": "GBK"}, body[start:end]
    return 1, {"format": "text"}, body  # every line of the XML, whole


async def copy_floor(db: Database, adapter: str, body: bytes) -> tuple[float, int]:
    """Seconds to COPY the statement's lines into a fresh table and commit; rows copied."""
    columns, options, lines = _floor_input(adapter, body)
    async with db.engine.connect() as connection:
        raw = await _driver(connection)
        await raw.execute(
            "DROP TABLE IF EXISTS statement_floor; CREATE TABLE statement_floor ("
            + ", ".join(f"c{n} text" for n in range(columns))
            + ")"
        )
        started = time.perf_counter()
        async with raw.transaction():
            await raw.copy_to_table("statement_floor", source=io.BytesIO(lines), **options)
        seconds = time.perf_counter() - started
        rows = await raw.fetchval("SELECT count(*) FROM statement_floor")
        await raw.execute("DROP TABLE statement_floor")
    return seconds, rows


def reconcile(url: str, secret_key: str, slug: str, path: Path) -> tuple[float, int, str]:
    """`prepaid-guard reconcile` in a child process: wall seconds, its peak RSS in bytes, and
    what it printed."""
    command = [str(Path(sys.executable).parent / "prepaid-guard"), "reconcile", str(path)]
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": secret_key, "LOG_LEVEL": "WARNING"}
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        child = subprocess.Popen(
            [*command, "--bank", slug], env=env, stdout=output, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        printed = output.read().decode(errors="replace")
    if child.returncode != 0:
        raise SystemExit(f"{slug}: prepaid-guard reconcile exited {child.returncode}:\n{printed}")
    return seconds, usage.ru_maxrss * 1024, printed


async def recorded(db: Database, slug: str) -> tuple[str, int, int]:
    """The run's status, lines and breaks."""
    async with db.engine.connect() as connection:
        run = (
            await connection.execute(
                select(ReconciliationRun.id, ReconciliationRun.status, ReconciliationRun.lines)
                .where(ReconciliationRun.bank_slug == slug)
                .order_by(ReconciliationRun.created_at.desc())
                .limit(1)
            )
        ).one()
        breaks = await connection.scalar(
            select(func.count()).where(ReconciliationBreak.run_id == run.id)
        )
    return run.status, run.lines, int(breaks or 0)


def profile(url: str, secret_key: str, slug: str, path: Path, out: Path) -> None:
    """The reconciliation in this process, under cProfile."""
    from app.cli import _reconcile
    from app.config import get_settings

    os.environ.update(DATABASE_URL=url, SECRET_KEY=secret_key)
    get_settings.cache_clear()  # read again, with the bench's database and key

    body = path.read_bytes()
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(_reconcile(slug, body, {}))
    profiler.disable()
    profiler.dump_stats(out)


async def setup(
    url: str, secret_key: str, banks: list[str], lines: int, payout_every: int, directory: Path
) -> Any:
    await recreate_database(url)
    await asyncio.to_thread(migrate.upgrade, url)
    engine = create_engine(url)
    db = Database(engine)
    day = local_date(utcnow())
    now = utcnow()
    await db.run(
        lambda session: session.execute(
            insert(Jurisdiction).values(
                code=JURISDICTION,
                name="Bench county",
                profile=RuleProfile().model_dump(),
                created_at=now,
                updated_at=now,
            )
        )
    )
    files = {}
    for adapter in banks:
        started = time.perf_counter()
        spec = Day(lines, day, _escrow_account(), payout_every)
        await prepare(db, secret_key, adapter, spec)
        files[adapter] = directory / f"statement-{adapter}"
        with files[adapter].open("wb") as file:
            for chunk in synthetic(adapter, spec):
                file.write(chunk)
        print(
            f"{adapter}: {lines:,} movements and their statement of {day} made in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
    return db, files


async def measure(db: Database, adapter: str, path: Path, url: str, secret_key: str) -> dict:
    slug = f"{adapter[:3]}-bench"
    body = await asyncio.to_thread(path.read_bytes)
    floor, copied = await copy_floor(db, adapter, body)
    seconds, peak, printed = await asyncio.to_thread(reconcile, url, secret_key, slug, path)
    status, lines, breaks = await recorded(db, slug)
    return {
        "bank": adapter,
        "file_mib": round(len(body) / 2**20, 1),
        "lines": lines,
        "status": status,
        "breaks": breaks,
        "reconcile_seconds": round(seconds, 2),
        "peak_rss_mib": round(peak / 2**20),
        "copy_floor_seconds": round(floor, 2),
        "copy_floor_rows": copied,
        "ratio": round(seconds / floor, 1),
        "printed": printed.strip().splitlines()[-1] if printed.strip() else "",
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/bench_reconcile"
    )
    parser.add_argument("--banks", default="ums", help="comma-separated: ums,gmbank,iso20022")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument(
        "--payout-every", type=int, default=100, help="every n-th movement is a payout"
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--profile", type=Path, help="profile the first bank's run in-process")
    args = parser.parse_args()
    banks = args.banks.split(",")
    secret_key = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as directory:
        db, files = await setup(
            args.database_url, secret_key, banks, args.lines, args.payout_every, Path(directory)
        )
        try:
            if args.profile:
                await asyncio.to_thread(
                    profile,
                    args.database_url,
                    secret_key,
                    f"{banks[0][:3]}-bench",
                    files[banks[0]],
                    args.profile,
                )
                print(json.dumps(await recorded(db, f"{banks[0][:3]}-bench")))
                return
            results = []
            for adapter in banks:
                result = await measure(db, adapter, files[adapter], args.database_url, secret_key)
                print(json.dumps(result), flush=True)
                if (result["status"], result["lines"], result["breaks"]) != (
                    "clean",
                    args.lines,
                    0,
                ):
                    raise SystemExit(f"{adapter}: the run is not clean: {result}")
                results.append(result)
        finally:
            await db.engine.dispose()
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
