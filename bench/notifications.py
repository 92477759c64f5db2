"""Bank payment notifications ingested per second, through HTTP, on PostgreSQL, per bank.

    python -m bench.notifications --database-url postgresql://postgres@127.0.0.1:5432/bench_notify

Drops and recreates the database, migrates it, configures one bank of each adapter (keys made
here), opens `--institutions` institutions per bank with enough enrollments awaiting payment, and
starts the service with uvicorn (`--workers` processes). Then, for each bank, `--connections`
keep-alive connections post signed payment notifications (one per enrollment, in the bank's own
format, signed as the bank signs: ums SHA-256 with the appended key, iso20022 HMAC, gmbank SM2) for
`--seconds` seconds. Every notification is verified and stored in the inbox, must be answered
with the bank's success reply, and is credited to its enrollment right after by the service's
crediting worker (INBOX_APPLY=background). Once the inbox has nothing left to credit, it checks
that every acknowledged notification credited its enrollment exactly once (one payment entry
each, no message left uncredited) and that the ledger of every institution verifies, and reports
how long each credit took to be visible from the moment the bank sent its request (the client's
clock and the server's `processed_at`, on the same machine).

The client is a small HTTP/1.1 writer on raw asyncio streams, with every message signed before the
clock starts, so that the measurement is of the service rather than of a client library.
"""

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select

from app.banks.config import configure_bank
from app.db import migrate
from app.db.engine import create_engine
from app.db.unit import Database
from app.jurisdictions.profile import RuleProfile
from app.kit.clock import utcnow
from app.ledger import service as ledger
from app.ledger.books import institution_books
from app.ledger.service import AccountSpec
from app.ledger.types import AccountKind
from app.models import BankMessage, Course, Enrollment, Institution, Jurisdiction, LedgerEntry
from bank_simulator.config import SimBank
from bank_simulator.keys import bank_keys
from bank_simulator.messages import DIALECTS
from bank_simulator.state import Payment
from bench.ledger_throughput import recreate_database

PRICE = 10_000
LESSONS = 10


@dataclass
class Result:
    bank: str
    workers: int
    connections: int
    notifications: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    credited: int
    journals_intact: bool
    # From the bank's request (client clock) to the credit being visible (processed_at): p50/p99/max.
    credit_p50_ms: float | None = None
    credit_p99_ms: float | None = None
    credit_max_ms: float | None = None
    # The uvicorn processes' CPU (user and system, from /proc) per acknowledged notification: over
    # the sending alone (replies, and the crediting that kept pace), and until the last credit.
    cpu_ms_while_sending: float | None = None
    cpu_ms_until_credited: float | None = None


@dataclass
class Prepared:
    path: str
    body: bytes
    headers: dict[str, str]
    order_no: str
    method: str = "POST"


async def prepare(url: str, secret_key: str, adapter: str, institutions: int, enrollments: int):
    """The bank configured, institutions with enrollments awaiting payment, and one signed
    notification per enrollment."""
    engine = create_engine(url)
    db = Database(engine)
    keys = bank_keys(adapter)
    slug = f"{adapter[:3]}-bench"
    await db.run(
        lambda session: configure_bank(
            session, secret_key, slug, adapter, "http://127.0.0.1:9/unused", keys.service_config
        )
    )
    code = f"B{adapter[:3].upper()}"
    now = utcnow()
    await db.run(
        lambda session: session.execute(
            insert(Jurisdiction).values(
                code=code,
                name="Bench county",
                profile=RuleProfile().model_dump(),
                created_at=now,
                updated_at=now,
            )
        )
    )
    per_institution = -(-enrollments // institutions)
    sim_bank = SimBank(slug=slug, adapter=adapter, **keys.simulator_config)
    dialect = DIALECTS[adapter]
    prepared: list[Prepared] = []
    for n in range(institutions):
        institution_id, escrow = (
            uuid.uuid4(),
            f"62{adapter[:1].upper()}{n:06d}{secrets.randbelow(10**8):08d}",
        )
        course_id = uuid.uuid4()
        rows: list[dict[str, Any]] = []
        for _ in range(per_institution):
            rows.append(
                {
                    "institution_id": institution_id,
                    "id": uuid.uuid4(),
                    "course_id": course_id,
                    "order_no": f"PG{uuid.uuid4().hex[:30]}",
                    "student_name": "Bench",
                    "student_id_hash": secrets.token_hex(32),
                    "student_id_masked": "110***********0017",
                    "payer_name": "Bench parent",
                    "payer_phone": "13800138000",
                    "lessons": LESSONS,
                    "lesson_price_fen": PRICE,
                    "amount_fen": LESSONS * PRICE,
                    "status": "awaiting_payment",
                    "valid_from": now.date(),
                    "valid_until": now.date().replace(year=now.year + 1),
                    "expires_at": now.replace(year=now.year + 1),
                    "created_at": now,
                    "updated_at": now,
                }
            )

        async def work(
            session,
            institution_id=institution_id,
            escrow=escrow,
            rows=rows,
            n=n,
            course_id=course_id,
        ):
            session.add(
                Institution(
                    id=institution_id,
                    name=f"Bench school {n}",
                    uscc=f"91{secrets.randbelow(10**16):016d}",
                    license_no=f"L{n}",
                    category="non_subject",
                    jurisdiction_code=code,
                    bank_slug=slug,
                    escrow_account_no=escrow,
                    basic_account_no=f"6228{n:012d}",
                    basic_account_name=f"Bench school {n}",
                    created_at=now,
                    updated_at=now,
                )
            )
            await session.flush()  # the course refers to it
            session.add(
                Course(
                    institution_id=institution_id,
                    id=course_id,
                    name="Bench",
                    category="non_subject",
                    lesson_price_fen=PRICE,
                    starts_on=now.date(),
                    ends_on=now.date().replace(year=now.year + 1),
                    created_at=now,
                )
            )
            await session.flush()
            connection = await session.connection()
            await institution_books(connection, institution_id)
            await session.execute(insert(Enrollment), rows)
            # As creating an enrollment does: its prepaid account is opened with it.
            await ledger.open_accounts(
                connection,
                institution_id,
                [AccountSpec(AccountKind.prepaid, ref=str(row["id"])) for row in rows],
            )

        await db.run(work)
        for row in rows:
            reference = secrets.token_hex(10)
            message = dialect.payment(
                sim_bank,
                message_id=f"N{uuid.uuid4().hex[:24]}",
                payment=Payment(
                    slug=slug,
                    account_no=escrow,
                    order_no=row["order_no"],
                    amount_fen=row["amount_fen"],
                    bank_reference=reference,
                    channel_order_id=f"T{reference}",
                    payer_name="张三",
                    payer_account="6222020200001234",
                ),
                status=dialect.payment_success_status,
                amount_text=dialect.amount_text(row["amount_fen"]),
                at=utcnow(),
            )
            headers = {"content-type": message.content_type}
            headers.update(dialect.sign(sim_bank, message.body, utcnow()))
            prepared.append(
                Prepared(f"/v1/banks/{slug}/notify", message.body, headers, row["order_no"])
            )
    await engine.dispose()
    random.shuffle(prepared)
    return slug, prepared


def request_bytes(host: str, item: Prepared) -> bytes:
    head = [f"{item.method} {item.path} HTTP/1.1", f"host: {host}"]
    head += [f"content-length: {len(item.body)}"] if item.body else []
    head += [f"{name}: {value}" for name, value in item.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + item.body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


SUCCESS = {"ums": b"SUCCESS", "iso20022": b"", "gmbank": b'"0000"'}
# The ceiling runs: the same servers, client and connections, on probes that do no bank work.
# /healthz goes through the whole middleware stack and touches nothing; /readyz adds one database
# round trip (SELECT 1 on a pooled connection).
CEILINGS = {"healthz": b'"ok"', "readyz": b'"ready"'}
SUCCESS.update(CEILINGS)


async def blast(
    ports: list[int], adapter: str, items: list[Prepared], connections: int, seconds: float
):
    queue = list(items)
    latencies: list[float] = []
    acknowledged: list[Prepared] = []
    sent_at: dict[bytes, float] = {}  # wall clock, to compare with the server's processed_at
    deadline = time.perf_counter() + seconds

    async def connection(port: int) -> None:
        host = f"127.0.0.1:{port}"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue and time.perf_counter() < deadline:
                item = queue.pop()
                started = time.perf_counter()
                sent_at[item.body] = time.time()
                writer.write(request_bytes(host, item))
                status, body = await read_response(reader)
                latencies.append(time.perf_counter() - started)
                if status != 200 or SUCCESS[adapter] not in body:
                    raise RuntimeError(f"{adapter}: {status} {body[:200]!r}")
                acknowledged.append(item)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(ports[n % len(ports)]) for n in range(connections)))
    elapsed = time.perf_counter() - started
    return acknowledged, latencies, elapsed, sent_at


async def one_by_one(url: str, secret_key: str, adapter: str, count: int) -> dict[str, Any]:
    """Post `count` notifications one at a time to the app in this process (no HTTP server, no
    concurrency): wall time, CPU time and SQL statements per notification."""
    from sqlalchemy import event

    from app.config import Settings
    from app.main import create_app

    _, items = await prepare(url, secret_key, adapter, 20, count + 20)
    # Credited before each reply, so that the time and statements counted are the whole of it.
    app = create_app(
        Settings(database_url=url, secret_key=secret_key, log_level="WARNING", inbox_apply="inline")
    )
    statements = 0

    def counted(*_: object) -> None:
        nonlocal statements
        statements += 1

    async with app.router.lifespan_context(app):
        event.listen(app.state.engine.sync_engine, "before_cursor_execute", counted)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for number, item in enumerate(items):
                if number == 20:  # after a warm-up: caches filled, connections open
                    statements, wall, cpu = 0, time.perf_counter(), time.process_time()
                reply = await client.post(item.path, content=item.body, headers=item.headers)
                if reply.status_code != 200:
                    raise RuntimeError(f"{adapter}: {reply.status_code} {reply.text[:200]}")
    return {
        "bank": adapter,
        "ms_per_notification": round((time.perf_counter() - wall) / count * 1000, 2),
        "cpu_ms_per_notification": round((time.process_time() - cpu) / count * 1000, 2),
        "statements_per_notification": round(statements / count, 1),
    }


async def store_then_credit(
    url: str, secret_key: str, adapter: str, count: int, institutions: int
) -> dict[str, Any]:
    """Post `count` notifications, 32 at a time, to the app in this process with its crediting
    worker idle, then credit them all with one drain: the CPU time and SQL statements per
    notification of each half (storing includes this process's HTTP client)."""
    from sqlalchemy import event

    from app.banks.crediting import InboxRuntime
    from app.config import InboxApply, Settings
    from app.main import create_app

    _, items = await prepare(url, secret_key, adapter, institutions, count + 50)
    app = create_app(
        Settings(
            database_url=url,
            secret_key=secret_key,
            log_level="WARNING",
            inbox_apply=InboxApply.background,
        )
    )
    statements = 0

    def counted(*_: object) -> None:
        nonlocal statements
        statements += 1

    start = InboxRuntime.start
    InboxRuntime.start = lambda self: None  # type: ignore[method-assign]  # credited below
    try:
        async with app.router.lifespan_context(app):
            event.listen(app.state.engine.sync_engine, "before_cursor_execute", counted)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                slots = asyncio.Semaphore(32)

                async def post(item: Prepared) -> None:
                    async with slots:
                        reply = await client.post(
                            item.path, content=item.body, headers=item.headers
                        )
                    if reply.status_code != 200:
                        raise RuntimeError(f"{adapter}: {reply.status_code} {reply.text[:200]}")

                await asyncio.gather(*(post(item) for item in items[:50]))  # warm-up
                await app.state.inbox.drain()
                statements, cpu = 0, time.process_time()
                await asyncio.gather(*(post(item) for item in items[50 : count + 50]))
                stored = (statements, time.process_time() - cpu)
            statements, cpu = 0, time.process_time()
            credited = await app.state.inbox.drain()
            spent = (statements, time.process_time() - cpu)
    finally:
        InboxRuntime.start = start  # type: ignore[method-assign]
    if credited != count:
        raise RuntimeError(f"{adapter}: {credited} credited of {count} stored")
    return {
        "bank": adapter,
        "institutions": institutions,
        "store_cpu_ms": round(stored[1] / count * 1000, 2),
        "store_statements": round(stored[0] / count, 2),
        "credit_cpu_ms": round(spent[1] / count * 1000, 2),
        "credit_statements": round(spent[0] / count, 2),
    }


async def settled(url: str, slug: str, patience: float = 120.0) -> None:
    """Wait until the service has credited every message it stored (its worker runs on)."""
    engine = create_engine(url)
    try:
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            async with engine.connect() as connection:
                left = await connection.scalar(
                    select(func.count())
                    .select_from(BankMessage)
                    .where(BankMessage.bank_slug == slug, BankMessage.status == "stored")
                )
            if not left:
                return
            await asyncio.sleep(0.2)
        raise SystemExit(f"{slug}: {left} messages still uncredited after {patience} s")
    finally:
        await engine.dispose()


async def check(url: str, slug: str, acknowledged: list[Prepared]) -> tuple[int, int, bool]:
    """Enrollments credited among those acknowledged, payment entries of the bank, journals."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            credited = 0
            for start in range(0, len(acknowledged), 5000):  # bounded IN lists
                orders = [item.order_no for item in acknowledged[start : start + 5000]]
                credited += (
                    await connection.scalar(
                        select(func.count())
                        .select_from(Enrollment)
                        .where(Enrollment.order_no.in_(orders), Enrollment.status == "active")
                    )
                    or 0
                )
            entries = await connection.scalar(
                select(func.count())
                .select_from(LedgerEntry)
                .where(LedgerEntry.idempotency_key.like(f"payment:{slug}:%"))
            )
            intact = True
            for institution_id in await ledger.institutions(connection):
                report = await ledger.verify(connection, institution_id)
                intact = intact and report.intact
        return credited, int(entries or 0), intact
    finally:
        await engine.dispose()


async def credit_delays(url: str, slug: str, sent_at: dict[bytes, float]) -> list[float]:
    """Seconds from each acknowledged request's sending to its credit's commit, sorted."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(BankMessage.body, BankMessage.processed_at).where(
                    BankMessage.bank_slug == slug, BankMessage.status == "processed"
                )
            )
            return sorted(
                row.processed_at.timestamp() - sent_at[row.body]
                for row in rows
                if row.body in sent_at
            )
    finally:
        await engine.dispose()


def per_notification_ms(seconds: float, acknowledged: list) -> float | None:
    return round(seconds / len(acknowledged) * 1000, 2) if acknowledged else None


def percentile_ms(values: list[float], share: float) -> float:
    return round(values[max(0, int(len(values) * share) - 1)] * 1000, 1)


def start_service(
    url: str,
    secret_key: str,
    port: int,
    extra_env: dict[str, str] | None = None,
    target: str = "app.main:app",
) -> subprocess.Popen:
    """One uvicorn process serving `target` (the service, or another benchmark's app)."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": secret_key,
        "LOG_LEVEL": "WARNING",
        "ENVIRONMENT": "development",
        "INBOX_APPLY": "background",
        **(extra_env or {}),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    return process


async def wait_ready(port: int) -> None:
    for _ in range(200):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            status, _ = await read_response(reader)
            writer.close()
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the service did not start")


async def main() -> None:
    from bench.requests import cpu_seconds  # here: bench.requests imports this module

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/bench_notify"
    )
    parser.add_argument(
        "--banks",
        default="ums,iso20022,gmbank",
        help="banks to run, and optionally the ceilings healthz and readyz",
    )
    parser.add_argument("--institutions", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--rate-ceiling", type=int, default=4000, help="notifications prepared per second of run"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--port", type=int, default=8917)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--one-by-one",
        type=int,
        default=0,
        metavar="N",
        help="instead of the HTTP run, post N notifications one at a time in this process and "
        "report time, CPU and SQL statements per notification",
    )
    parser.add_argument(
        "--split",
        type=int,
        default=0,
        metavar="N",
        help="instead of the HTTP run, store N notifications in this process (32 at a time, "
        "worker idle), then credit them in one drain, and report CPU and SQL statements per "
        "notification of each half (over --institutions institutions)",
    )
    args = parser.parse_args()

    await recreate_database(args.database_url)
    await asyncio.to_thread(migrate.upgrade, args.database_url)
    secret_key = secrets.token_urlsafe(32)
    if args.one_by_one:
        costs = [
            await one_by_one(args.database_url, secret_key, adapter, args.one_by_one)
            for adapter in args.banks.split(",")
        ]
        for cost in costs:
            print(json.dumps(cost), flush=True)
        if args.out:
            args.out.write_text(json.dumps(costs, indent=2) + "\n")
        return
    if args.split:
        costs = [
            await store_then_credit(
                args.database_url, secret_key, adapter, args.split, args.institutions
            )
            for adapter in args.banks.split(",")
        ]
        for cost in costs:
            print(json.dumps(cost), flush=True)
        if args.out:
            args.out.write_text(json.dumps(costs, indent=2) + "\n")
        return
    results = []
    for adapter in args.banks.split(","):
        count = int(args.rate_ceiling * args.seconds)
        slug = ""
        if adapter in CEILINGS:
            items = [Prepared(f"/{adapter}", b"", {}, "", "GET") for _ in range(count)]
        else:
            print(
                f"{adapter}: preparing {count} notifications for {args.institutions} institutions",
                flush=True,
            )
            slug, items = await prepare(
                args.database_url, secret_key, adapter, args.institutions, count
            )
        # One process per port, as behind a load balancer: a single listening socket shared by
        # workers hands every keep-alive connection to whichever worker accepts first.
        ports = [args.port + n for n in range(args.workers)]
        services = [start_service(args.database_url, secret_key, port) for port in ports]
        try:
            for port in ports:
                await wait_ready(port)
            cpu_before = sum(cpu_seconds(service.pid) for service in services)
            acknowledged, latencies, elapsed, sent_at = await blast(
                ports, adapter, items, args.connections, args.seconds
            )
            cpu_sent = sum(cpu_seconds(service.pid) for service in services)
            if slug:
                await settled(args.database_url, slug)
            cpu_credited = sum(cpu_seconds(service.pid) for service in services)
        finally:
            for service in services:
                service.send_signal(signal.SIGINT)
            for service in services:
                service.wait(timeout=30)
        delays: list[float] = []
        if adapter in CEILINGS:
            credited, entries, intact = len(acknowledged), len(acknowledged), True
        else:
            credited, entries, intact = await check(args.database_url, slug, acknowledged)
            delays = await credit_delays(args.database_url, slug, sent_at)
        latencies.sort()
        result = Result(
            bank=adapter,
            workers=args.workers,
            connections=args.connections,
            notifications=len(acknowledged),
            seconds=round(elapsed, 2),
            per_second=round(len(acknowledged) / elapsed, 1),
            p50_ms=round(statistics.median(latencies) * 1000, 1),
            p99_ms=percentile_ms(latencies, 0.99),
            credited=credited,
            journals_intact=intact,
            credit_p50_ms=percentile_ms(delays, 0.5) if delays else None,
            credit_p99_ms=percentile_ms(delays, 0.99) if delays else None,
            credit_max_ms=percentile_ms(delays, 1.0) if delays else None,
            cpu_ms_while_sending=per_notification_ms(cpu_sent - cpu_before, acknowledged),
            cpu_ms_until_credited=per_notification_ms(cpu_credited - cpu_before, acknowledged),
        )
        print(json.dumps(asdict(result)), flush=True)
        if credited != len(acknowledged) or entries != credited or not intact:
            raise SystemExit(
                f"{adapter}: {credited} credited with {entries} payment entries for "
                f"{len(acknowledged)} acknowledged"
            )
        results.append(result)
    if args.out:
        args.out.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
