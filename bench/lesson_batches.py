"""Lessons recorded per second in batches (`POST /v1/lessons/batch`), or one per request with
`--single` (`POST /v1/enrollments/{id}/lessons`), through HTTP, on PostgreSQL.

    python -m bench.lesson_batches --database-url postgresql://postgres@127.0.0.1:5432/bench_batches
    python -m bench.lesson_batches --single --institutions 1000 --enrollments 2 --connections 64
    python -m bench.lesson_batches --single --institutions 1 --enrollments 200 --connections 64

(the last two: single records spread over 1,000 institutions, and all on one, the hot case.)

Drops and recreates the database, migrates it, and opens `--institutions` institutions, each with
an institution key and `--enrollments` paid enrollments of 1,000 lessons (through the services, as
`bench.requests` does). Every batch is built before the clock starts: `--batch` items of one
institution, spread evenly over its enrollments, the institutions taken in turn, so that batches
sent at once mostly lock different enrollments. The service runs as `--workers` uvicorn processes,
one port each (as behind a load balancer); `--connections` keep-alive connections, shared out over
the ports, post the next batch as soon as the last is answered, for `--seconds` seconds after
`--warmup` seconds not counted. With `--single`, each request records one lesson (answered 201),
the institutions and their enrollments taken in turn.

Reports records per second, batches' p50/p99 latency and the servers' CPU per record (user and
system time of the uvicorn processes over the timed window, from /proc) and the database's (its
PostgreSQL backends', and its autovacuum workers' apart, likewise). Every item must come back `accepted`; afterwards the lessons in the database and the
enrollments' pending counters must both equal what was accepted, or the run reports nothing.
"""

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from itertools import cycle
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from app.db import migrate
from app.kit.clock import utcnow
from bench.ledger_throughput import recreate_database
from bench.notifications import Prepared, read_response, request_bytes, start_service, wait_ready
from bench.requests import (
    CLK_TCK,
    LESSONS,
    RequestFailed,
    School,
    cpu_seconds,
    load,
    measured_commit,
    stand_in_calendar,
)


@dataclass
class Measured:
    workers: int
    connections: int
    batch: int
    batches: int
    records: int
    seconds: float
    records_per_second: float
    p50_ms: float
    p99_ms: float
    server_cpu_us_per_record: float
    database_cpu_us_per_record: float
    autovacuum_cpu_us_per_record: float
    ran_out_of_batches: bool


def batches(schools: list[School], size: int) -> list[bytes]:
    """Every batch the enrollments have lessons for, the institutions in turn."""
    occurred_at = utcnow().isoformat()
    per_school = len(next(iter(schools)).enrollments) * LESSONS // size
    built = []
    for _ in range(per_school):
        for school in schools:
            enrollments = cycle(str(enrollment_id) for enrollment_id in school.enrollments)
            items = [
                {
                    "enrollment_id": next(enrollments),
                    "lesson_key": uuid.uuid4().hex,
                    "occurred_at": occurred_at,
                    "count": 1,
                }
                for _ in range(size)
            ]
            body = json.dumps({"items": items}).encode()
            headers = {"authorization": f"Bearer {school.key}", "content-type": "application/json"}
            built.append(request_bytes("bench", Prepared("/v1/lessons/batch", body, headers, "")))
    return built


def singles(schools: list[School], most: int) -> list[bytes]:
    """Up to `most` requests of one lesson each, the institutions and enrollments in turn."""
    occurred_at = utcnow().isoformat()
    enrollments = [(school, list(school.enrollments)) for school in schools]
    built: list[bytes] = []
    for _ in range(LESSONS):
        for index in range(len(enrollments[0][1])):
            for school, ids in enrollments:
                if len(built) == most:
                    return built
                body = json.dumps({"lesson_key": uuid.uuid4().hex, "occurred_at": occurred_at})
                headers = {
                    "authorization": f"Bearer {school.key}",
                    "content-type": "application/json",
                }
                prepared = Prepared(
                    f"/v1/enrollments/{ids[index]}/lessons", body.encode(), headers, ""
                )
                built.append(request_bytes("bench", prepared))
    return built


def accepted_whole(size: int) -> Callable[[int, bytes], bool]:
    """A batch's answer: 200 with every item accepted (counted in the raw body: parsing a thousand
    results would cost the client more than the check is worth on a machine it shares with the
    servers); a single record's: 201."""
    if size == 0:
        return lambda status, _body: status == 201
    return lambda status, body: status == 200 and body.count(b'"status":"accepted"') == size


@dataclass
class Window:
    batches: int
    seconds: float
    latencies: list[float]
    exhausted: bool


async def blast(
    ports: list[int], queue: list[bytes], size: int, connections: int, seconds: float
) -> Window:
    """Post requests from `queue` (taken from its end) until `seconds` pass or it is empty; each
    answer must accept every item (`size` 0: a single record)."""
    accepted = accepted_whole(size)
    latencies: list[float] = []
    exhausted = False
    deadline = time.perf_counter() + seconds

    async def connection(port: int) -> None:
        nonlocal exhausted
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                if not queue:
                    exhausted = True
                    return
                started = time.perf_counter()
                writer.write(queue.pop())
                status, body = await read_response(reader)
                latencies.append(time.perf_counter() - started)
                if not accepted(status, body):
                    raise RequestFailed(f"{status} {body[:300]!r}")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(ports[n % len(ports)]) for n in range(connections)))
    return Window(len(latencies), time.perf_counter() - started, latencies, exhausted)


def database_cpu_seconds(database: str) -> dict[str, float]:
    """User and system CPU of the PostgreSQL processes working on `database` (their process titles
    name it): the backends serving its connections, and apart from them the autovacuum workers
    that the inserted rows set off (whether one runs within a short window is luck). The server's
    shared processes (WAL writer, checkpointer) are left out."""
    wanted = f" {database} ".encode()
    total = {"backends": 0, "autovacuum": 0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
            if not (title.startswith(b"postgres: ") and wanted in title):
                continue
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        kind = "autovacuum" if b"autovacuum" in title else "backends"
        total[kind] += int(fields[11]) + int(fields[12])  # utime, stime
    return {kind: ticks / CLK_TCK for kind, ticks in total.items()}


async def check(url: str, accepted: int) -> None:
    """The database holds exactly the accepted lessons, and the enrollments count them pending."""
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetchval("SELECT count(*) FROM lessons")
        pending = await connection.fetchval("SELECT sum(lessons_pending) FROM enrollments")
    finally:
        await connection.close()
    if not rows == pending == accepted:
        raise RequestFailed(f"{accepted} accepted, {rows} lessons stored, {pending} pending")


async def run(args: argparse.Namespace) -> Measured:
    url = args.database_url
    await recreate_database(url)
    await asyncio.to_thread(migrate.upgrade, url)
    secret = secrets.token_urlsafe(32)
    env = stand_in_calendar(Path(tempfile.mkdtemp(prefix="bench-batches-")))
    print(f"loading {args.institutions} institutions", flush=True)
    schools = await load(url, secret, args.institutions, args.enrollments)
    size = 0 if args.single else args.batch
    most = int(args.rate_ceiling * (args.warmup + args.seconds))
    queue = singles(schools, most) if args.single else batches(schools, size)
    queue.reverse()  # taken from the end: the institutions in turn
    print(f"{len(queue)} requests of {max(size, 1)} built", flush=True)
    ports = [args.port + n for n in range(args.workers)]
    services = [start_service(url, secret, port, extra_env=env) for port in ports]
    try:
        for port in ports:
            await wait_ready(port)
        warm = await blast(ports, queue, size, args.connections, args.warmup)
        database = str(make_url(url).database)
        cpu_before = sum(cpu_seconds(service.pid) for service in services)
        database_before = database_cpu_seconds(database)
        window = await blast(ports, queue, size, args.connections, args.seconds)
        cpu = sum(cpu_seconds(service.pid) for service in services) - cpu_before
        database_after = database_cpu_seconds(database)
    finally:
        for service in services:
            service.send_signal(signal.SIGINT)
        for service in services:
            service.wait(timeout=30)
    await check(
        url.replace("postgresql+asyncpg", "postgresql"),
        (warm.batches + window.batches) * max(size, 1),
    )
    records = window.batches * max(size, 1)
    cuts = statistics.quantiles(sorted(window.latencies), n=100, method="inclusive")
    return Measured(
        workers=args.workers,
        connections=args.connections,
        batch=size,
        batches=window.batches,
        records=records,
        seconds=round(window.seconds, 2),
        records_per_second=round(records / window.seconds, 1),
        p50_ms=round(cuts[49] * 1000, 1),
        p99_ms=round(cuts[98] * 1000, 1),
        server_cpu_us_per_record=round(cpu / records * 1e6, 1),
        database_cpu_us_per_record=round(
            (database_after["backends"] - database_before["backends"]) / records * 1e6, 1
        ),
        autovacuum_cpu_us_per_record=round(
            (database_after["autovacuum"] - database_before["autovacuum"]) / records * 1e6, 1
        ),
        ran_out_of_batches=window.exhausted,
    )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/bench_batches"
    )
    parser.add_argument("--institutions", type=int, default=10)
    parser.add_argument("--enrollments", type=int, default=20, help="paid, per institution")
    parser.add_argument("--batch", type=int, default=1000, help="items per batch")
    parser.add_argument(
        "--single", action="store_true", help="one lesson per request, not batches (batch: 0)"
    )
    parser.add_argument(
        "--rate-ceiling",
        type=float,
        default=8000,
        help="--single: requests built per second of the run, at most",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--port", type=int, default=8961)
    parser.add_argument("--out", type=Path)
    return parser.parse_args()


async def main() -> None:
    args = arguments()
    load_at_start = os.getloadavg()
    result = await run(args)
    print(json.dumps(asdict(result)), flush=True)
    if args.out:
        report = {
            "date": date.today().isoformat(),
            "commit": measured_commit(),
            "institutions": args.institutions,
            "enrollments_per_institution": args.enrollments,
            # Others' work on the machine shows here.
            "load_average": {"start": load_at_start, "end": os.getloadavg()},
            **asdict(result),
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        asyncio.run(main())
    except RequestFailed as failure:
        sys.exit(f"no report: {failure}")
