"""Ledger entries per second through the service layer (no HTTP), on PostgreSQL.

    python -m bench.ledger_throughput --database-url postgresql://postgres@127.0.0.1:5432/bench_ledger

Creates (drops and recreates) the named database, migrates it, opens the books of
`--institutions` institutions, then for each scenario runs `writers` concurrent tasks for
`--seconds` seconds, each posting payment entries and waiting for each call, `--batch` entries
per call (1: one entry per call; more: a call like the lesson batch endpoint's, all of one
institution), each call one transaction (run_in_transaction + service.post_many), in these
scenarios:

  spread  every entry goes to a random institution of many
  hot     every entry goes to the same institution

It checks afterwards that every institution's journal verifies and its balances add up.
"""

import argparse
import asyncio
import json
import random
import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.db import migrate
from app.db.engine import create_engine
from app.db.transaction import run_in_transaction
from app.ledger import service as ledger
from app.ledger.types import AccountKind, EntryDraft


@dataclass
class Result:
    scenario: str
    batch: int
    writers: int
    entries: int
    seconds: float
    entries_per_second: float
    p50_ms: float
    p99_ms: float


async def recreate_database(url: str) -> None:
    await _on_server(url, 'DROP DATABASE IF EXISTS "{}" WITH (FORCE)', 'CREATE DATABASE "{}"')


async def drop_database(url: str) -> None:
    await _on_server(url, 'DROP DATABASE IF EXISTS "{}" WITH (FORCE)')


async def _on_server(url: str, *statements: str) -> None:
    """Statements about the database `url` names, run from the server's `postgres` database."""
    target = make_url(url)
    admin = create_engine(
        target.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    try:
        async with admin.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement.format(target.database)))
    finally:
        await admin.dispose()


async def open_institutions(engine, count: int) -> list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]:
    books = []
    for _ in range(count):
        institution_id = uuid.uuid4()
        cash, prepaid = await run_in_transaction(
            engine,
            lambda c, i=institution_id: ledger.open_accounts(  # type: ignore[misc]
                c,
                i,
                [
                    ledger.AccountSpec(AccountKind.escrow_cash),
                    ledger.AccountSpec(AccountKind.prepaid, ref="bench"),
                ],
            ),
        )
        books.append((institution_id, cash.id, prepaid.id))
    return books


async def run(engine, books, writers: int, seconds: float, scenario: str, batch: int) -> Result:
    # Each hot run gets a fresh institution, so that one run's dead row versions are not the next's.
    [hot] = await open_institutions(engine, 1)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    rng = random.Random(writers)

    async def post(institution_id, drafts) -> None:
        results = await run_in_transaction(
            engine, lambda c: ledger.post_many(c, institution_id, drafts)
        )
        assert not any(isinstance(r, Exception) for r in results), results

    async def writer() -> None:
        while time.perf_counter() < deadline:
            institution_id, cash, prepaid = hot if scenario == "hot" else rng.choice(books)
            drafts = [
                EntryDraft.transfer(
                    uuid.uuid4().hex, "payment", cash, prepaid, rng.randint(1, 10_000)
                )
                for _ in range(batch)
            ]
            started = time.perf_counter()
            await post(institution_id, drafts)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    entries = len(latencies) * batch
    return Result(
        scenario=scenario,
        batch=batch,
        writers=writers,
        entries=entries,
        seconds=round(elapsed, 2),
        entries_per_second=round(entries / elapsed),
        p50_ms=round(statistics.median(latencies) * 1000, 2),
        p99_ms=round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
    )


async def check(engine) -> int:
    """Every journal written verifies: chain intact, balances equal to the journal."""
    async with engine.connect() as connection:
        institution_ids = await ledger.institutions(connection)
        for institution_id in institution_ids:
            report = await ledger.verify(connection, institution_id)
            assert report.intact, report
    return len(institution_ids)


async def main(args: argparse.Namespace) -> list[Result]:
    await recreate_database(args.database_url)
    await asyncio.to_thread(migrate.upgrade, args.database_url)
    engine = create_engine(args.database_url, pool_size=args.pool_size)
    books = await open_institutions(engine, args.institutions)
    results = []
    for scenario in ("spread", "hot"):
        for batch in args.batch:
            for writers in args.writers:
                result = await run(engine, books, writers, args.seconds, scenario, batch)
                print(json.dumps(asdict(result)), flush=True)
                results.append(result)
    print(f"verified the journals of {await check(engine)} institutions", flush=True)
    await engine.dispose()
    return results


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/bench_ledger"
    )
    parser.add_argument("--institutions", type=int, default=1000)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pool-size", type=int, default=20)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    outcome = asyncio.run(main(arguments))
    if arguments.out:
        arguments.out.write_text(json.dumps([asdict(r) for r in outcome], indent=2))
