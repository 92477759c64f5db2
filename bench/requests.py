"""Ordinary API requests against a lean reference and pgbench, in one run, on PostgreSQL.

    python -m bench.requests --database-url postgresql://postgres@127.0.0.1:5432/bench_requests

Measures, one after the other on the same machine:

1. **pgbench** on a scratch database (`<database>_pgbench`, made afresh with `pgbench -i`): one
   transaction per call that updates one of 1,000 account rows and inserts a history row, 8
   clients, `--seconds` seconds.
2. **The lean reference** (`bench/lean_app.py`, in the same scratch database): FastAPI, one uvicorn
   worker, a raw asyncpg pool, a lesson-shaped write of four statements in one transaction and a
   one-row read. The write is measured before and after PrepaidGuard, and the ratios are taken
   against the mean of the two, so a machine that got slower or faster in between shows.
3. **PrepaidGuard**, one uvicorn worker, on a fresh migrated database with `--institutions`
   institutions, each with an institution key, a course and `--enrollments` paid enrollments
   (made through the services, as the API and a bank payment would): the institution's balance
   view, an enrollment read, a single lesson record with and without `Idempotency-Key` (institution
   key), and the parent's confirmation of a pending lesson (parent key).

For each case: requests per second over `--connections` keep-alive connections for `--seconds`
(after `--warmup` seconds not counted), p50/p99 latency, and the server process's CPU per request
(user and system time of the uvicorn process and its children, from /proc, over the timed window).

4. **Statements per request, from PostgreSQL's log.** With `log_statement = 'all'` set on both
   benchmark databases, the servers are restarted (the setting applies to new connections), and
   `--log-requests` requests of each case (PrepaidGuard's from one caller each, just warmed up:
   see `statements_per_request`) are sent one at a time between two markers (a
   `SELECT 'bench-marker-...'` on a connection of its own, whose lines are left out). Every
   statement a server sent in between is counted, BEGIN and COMMIT included, and listed with its
   count per request; so are the empty transactions (BEGIN, then ROLLBACK: SQLAlchemy's pool
   pre-ping, a round trip more than the log shows, see `empty_transactions`). Logging is turned
   off again whatever happens.

A run refuses to report if any request got an unexpected status; it prints the first failure.
The client is the raw asyncio HTTP/1.1 writer of `bench.notifications`, with every request built
before the clock starts.
"""

import argparse
import asyncio
import itertools
import json
import os
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
from dateutil.relativedelta import relativedelta
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from stdnum.cn import ric

from app.auth.service import issue_key
from app.courses.schemas import CourseCreate
from app.courses.service import create_course
from app.db import migrate
from app.db.engine import create_engine
from app.db.unit import Database
from app.enrollments.schemas import EnrollmentCreate, PayerIn, StudentIn
from app.enrollments.service import create_enrollment
from app.jurisdictions.profile import RuleProfile
from app.kit import workdays
from app.kit.clock import utcnow
from app.kit.errors import DomainError
from app.kit.workdays import local_date
from app.ledger.books import institution_books
from app.lessons.schemas import LessonItem
from app.lessons.service import record_lessons
from app.models import Institution, Jurisdiction, Lesson
from app.models.api_key import Role
from app.models.institution import InstitutionCategory
from app.models.lesson import LessonStatus
from app.payments.service import BankPayment, credit_payment
from bench import lean_app
from bench.ledger_throughput import recreate_database
from bench.notifications import Prepared, read_response, request_bytes, start_service, wait_ready

CODE = "BREQ"
PRICE = 100
LESSONS = 1000
PGBENCH_ROWS = 1000
PGBENCH_CLIENTS = 8
PGBENCH_SCRIPT = """\\set aid random(1, {rows})
\\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, :aid, :delta, CURRENT_TIMESTAMP);
END;
"""
PG_LOG = Path("/var/log/postgresql/postgresql-15-main.log")
# The prefix the log is parsed with (Debian's default): time, [pid], user@database.
LOG_PREFIX = "%m [%p] %q%u@%d "
LOG_LINE = re.compile(
    r"^\S+ \S+ \S+ \[(?P<pid>\d+)\] \S*@(?P<db>\S*) LOG:  (?:statement|execute [^:]*): (?P<sql>.*)$"
)
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Requests of a case sent before its statements are counted: connections open, caches filled.
WARM_REQUESTS = 5


class RequestFailed(Exception):
    """A request got a status other than the one its case expects: the run reports nothing."""


# --- the fixture ----------------------------------------------------------------------------


@dataclass
class School:
    institution_id: uuid.UUID
    key: str
    # enrollment id -> its parent's key
    enrollments: dict[uuid.UUID, str] = field(default_factory=dict)


def id_number(rng: random.Random) -> str:
    """A resident identity number with a valid birth date and check character."""
    birth = date(2012, 1, 1) + timedelta(days=rng.randrange(2000))
    body = f"110105{birth:%Y%m%d}{rng.randrange(1000):03d}"
    return body + ric.calc_check_digit(body + "?")


async def open_school(
    session: AsyncSession, secret: str, number: int, enrollments: int, rng: random.Random
) -> School:
    """One institution with its books, key, course and `enrollments` paid enrollments, through the
    services (the payment as a verified bank notification credits it)."""
    now = utcnow()
    institution = Institution(
        id=uuid.uuid4(),
        name=f"Bench school {number}",
        uscc=f"91{number:016d}",
        license_no=f"L{number:08d}",
        category="non_subject",
        jurisdiction_code=CODE,
        bank_slug="ums",
        escrow_account_no=f"6222{number:015d}",
        basic_account_no=f"6228{number:015d}",
        basic_account_name=f"Bench school {number}",
        status="active",
        list_status="none",
        alert_level="GREEN",
        created_at=now,
        updated_at=now,
    )
    session.add(institution)
    await session.flush()
    await institution_books(await session.connection(), institution.id)
    today = local_date(now)
    course = await create_course(
        session,
        institution.id,
        CourseCreate(
            name="Piano",
            category=InstitutionCategory.non_subject,
            lesson_price_fen=PRICE,
            starts_on=today,
            ends_on=today + relativedelta(months=3),
        ),
    )
    _, key = await issue_key(
        session, secret, role=Role.institution, name="bench", institution_id=institution.id
    )
    school = School(institution.id, key)
    for _ in range(enrollments):
        body = EnrollmentCreate(
            course_id=course.id,
            student=StudentIn(name="Xiao Ming", id_number=id_number(rng)),
            payer=PayerIn(name="Wang Fang", phone="13800000000"),
            lessons=LESSONS,
        )
        enrollment, parent_key = await create_enrollment(
            session, secret, institution.id, body, utcnow()
        )
        payment = BankPayment(
            bank_slug="ums",
            bank_reference=f"REF{uuid.uuid4().hex[:20]}",
            escrow_account_no=institution.escrow_account_no,
            order_no=enrollment.order_no,
            amount_fen=enrollment.amount_fen,
            paid_at=utcnow(),
        )
        await credit_payment(session, payment)
        school.enrollments[enrollment.id] = parent_key
    return school


async def load(url: str, secret: str, institutions: int, enrollments: int) -> list[School]:
    """The jurisdiction (caps wide enough for `LESSONS` per enrollment) and its schools."""
    engine = create_engine(url)
    db = Database(engine)
    rng = random.Random(12)
    now = utcnow()
    profile = RuleProfile(max_prepaid_lessons=LESSONS, max_prepaid_amount_fen=LESSONS * PRICE)
    try:
        await db.run(
            lambda session: _add(
                session,
                Jurisdiction(
                    code=CODE,
                    name="Bench county",
                    profile=profile.model_dump(),
                    created_at=now,
                    updated_at=now,
                ),
            )
        )
        return [
            await db.run(
                partial(open_school, secret=secret, number=n, enrollments=enrollments, rng=rng)
            )
            for n in range(institutions)
        ]
    finally:
        await engine.dispose()


async def _add(session: AsyncSession, row: Any) -> None:
    session.add(row)


async def pending_lessons(
    url: str, schools: list[School], wanted: int
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(lesson, enrollment) of `wanted` lessons of the schools' enrollments pending confirmation,
    shuffled: those recorded so far, and as many more as are missing, recorded through the lesson
    service in batches."""
    engine = create_engine(url)
    db = Database(engine)
    rng = random.Random(13)
    try:
        enrollment_ids = [e for school in schools for e in school.enrollments]

        async def pending(session: AsyncSession) -> list[tuple[uuid.UUID, uuid.UUID]]:
            rows = await session.execute(
                select(Lesson.id, Lesson.enrollment_id).where(
                    Lesson.status == LessonStatus.pending_confirmation,
                    Lesson.enrollment_id.in_(enrollment_ids),
                )
            )
            return [(row[0], row[1]) for row in rows]

        found = await db.run(pending)
        if len(found) < wanted:
            per_school = -(-(wanted - len(found)) // len(schools))
            for school in schools:
                await db.run(partial(record_pool, school=school, count=per_school, rng=rng))
            found = await db.run(pending)
    finally:
        await engine.dispose()
    rng.shuffle(found)
    return found[:wanted]


async def record_pool(
    session: AsyncSession, school: School, count: int, rng: random.Random
) -> None:
    """`count` lessons of the school's enrollments recorded now, in one batch; any refusal stops
    the run (the confirmations would run short)."""
    enrollment_ids = list(school.enrollments)
    items = [
        LessonItem(
            enrollment_id=rng.choice(enrollment_ids),
            lesson_key=f"pool-{uuid.uuid4().hex}",
            occurred_at=utcnow(),
        )
        for _ in range(count)
    ]
    outcomes = await record_lessons(session, school.institution_id, items, utcnow())
    refused = [outcome for outcome in outcomes if isinstance(outcome, DomainError)]
    if refused:
        raise RequestFailed(f"a lesson to confirm was refused: {refused[0].code} {refused[0]}")


# --- the cases ------------------------------------------------------------------------------


@dataclass
class Case:
    """One kind of request: how to build `n` of them, and the status each must get."""

    name: str
    system: str  # "lean" or "prepaidguard"
    expected: int
    build: Callable[[int], list[bytes]]
    # Reads may be sent again; writes are used up (a lesson key, a pending lesson).
    reusable: bool


def _http(method: str, path: str, headers: dict[str, str], body: dict[str, Any] | None) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    if payload:
        headers = {**headers, "content-type": "application/json"}
    return request_bytes("bench", Prepared(path, payload, headers, "", method))


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def lean_cases(rng: random.Random) -> list[Case]:
    def write(n: int) -> list[bytes]:
        return [
            _http(
                "POST",
                f"/lean/accounts/{rng.randint(1, lean_app.ACCOUNTS)}/lessons",
                {},
                {"lesson_key": uuid.uuid4().hex, "occurred_at": utcnow().isoformat(), "count": 1},
            )
            for _ in range(n)
        ]

    def read(n: int) -> list[bytes]:
        return [
            _http("GET", f"/lean/accounts/{rng.randint(1, lean_app.ACCOUNTS)}", {}, None)
            for _ in range(n)
        ]

    return [
        Case("lean_write", "lean", 201, write, reusable=False),
        Case("lean_read", "lean", 200, read, reusable=True),
    ]


PREPAIDGUARD_CASES = ("balance", "enrollment", "lesson", "lesson_idempotency_key", "confirm")


def prepaidguard_cases(
    schools: list[School], confirmable: Callable[[int], list[tuple[uuid.UUID, uuid.UUID]]]
) -> list[Case]:
    rng = random.Random(14)
    parent_of = {e: key for school in schools for e, key in school.enrollments.items()}

    def balance(n: int) -> list[bytes]:
        picks = (rng.choice(schools) for _ in range(n))
        return [
            _http("GET", f"/v1/institutions/{s.institution_id}/balance", _bearer(s.key), None)
            for s in picks
        ]

    def enrollment(n: int) -> list[bytes]:
        picks = (rng.choice(schools) for _ in range(n))
        return [
            _http("GET", f"/v1/enrollments/{rng.choice(list(s.enrollments))}", _bearer(s.key), None)
            for s in picks
        ]

    def lessons(idempotent: bool) -> Callable[[int], list[bytes]]:
        def build(n: int) -> list[bytes]:
            built = []
            for _ in range(n):
                school = rng.choice(schools)
                headers = _bearer(school.key)
                if idempotent:
                    headers["idempotency-key"] = uuid.uuid4().hex
                body = {"lesson_key": uuid.uuid4().hex, "occurred_at": utcnow().isoformat()}
                path = f"/v1/enrollments/{rng.choice(list(school.enrollments))}/lessons"
                built.append(_http("POST", path, headers, body | {"count": 1}))
            return built

        return build

    def confirm(n: int) -> list[bytes]:
        return [
            _http("POST", f"/v1/lessons/{lesson}/confirm", _bearer(parent_of[enrollment]), None)
            for lesson, enrollment in confirmable(n)
        ]

    cases = [
        Case("balance", "prepaidguard", 200, balance, reusable=True),
        Case("enrollment", "prepaidguard", 200, enrollment, reusable=True),
        Case("lesson", "prepaidguard", 201, lessons(False), reusable=False),
        Case("lesson_idempotency_key", "prepaidguard", 201, lessons(True), reusable=False),
        Case("confirm", "prepaidguard", 200, confirm, reusable=False),
    ]
    assert [case.name for case in cases] == list(PREPAIDGUARD_CASES)
    return cases


# --- measuring ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User and system CPU of `pid` and its live descendants, and of the children they reaped."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # After "pid (comm) ": state ppid ... utime(14) stime cutime cstime, counted from field 3.
        parents[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = sum(int(f) for f in fields[11:15])
    family, total = {pid}, 0
    for candidate in sorted(ticks):
        ancestor = candidate
        while ancestor not in family and ancestor in parents and ancestor > 1:
            ancestor = parents[ancestor]
        if ancestor in family:
            family.add(candidate)
            total += ticks[candidate]
    return total / CLK_TCK


@dataclass
class Window:
    requests: int
    seconds: float
    latencies: list[float]
    exhausted: bool


async def blast(
    port: int, case: Case, items: Iterator[bytes], connections: int, seconds: float
) -> Window:
    """`connections` keep-alive connections send the next request as soon as the last is
    answered, until `seconds` have passed or the items are used up."""
    latencies: list[float] = []
    exhausted = False
    deadline = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal exhausted
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                item = next(items, None)
                if item is None:
                    exhausted = True
                    return
                started = time.perf_counter()
                writer.write(item)
                status, body = await read_response(reader)
                latencies.append(time.perf_counter() - started)
                if status != case.expected:
                    raise RequestFailed(
                        f"{case.name}: {status} (expected {case.expected}) "
                        f"{body[:300]!r}\nrequest: {item[:300]!r}"
                    )
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return Window(len(latencies), time.perf_counter() - started, latencies, exhausted)


def _items(case: Case, count: int | None) -> Iterator[bytes]:
    """`count` requests of `case`. Reads cycle through at most a few thousand built ones, and
    `None` sends them without end (a timed run); writes are built one for each use."""
    if case.reusable:
        built = case.build(min(count or 5000, 5000))
        indices = itertools.count() if count is None else range(count)
        return (built[n % len(built)] for n in indices)
    if count is None:
        raise ValueError(f"{case.name}: a write needs a count")
    return iter(case.build(count))


@dataclass
class Measured:
    case: str
    system: str
    connections: int
    requests: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    ran_out_of_requests: bool
    rate_vs_lean: float | None = None
    cpu_vs_lean: float | None = None
    statements_per_request: float | None = None
    empty_transactions_per_request: float | None = None
    statements: list[tuple[str, float]] | None = None


async def measure(
    port: int, pid: int, case: Case, connections: int, seconds: float, warmup: float, ceiling: int
) -> Measured:
    """Warm up, then one timed window of `case`, with the server's CPU over it."""
    writes = {"warmup": int(ceiling * warmup) + 1, "timed": int(ceiling * seconds)}
    budget = {name: None if case.reusable else n for name, n in writes.items()}
    await blast(port, case, _items(case, budget["warmup"]), connections, warmup)
    items = _items(case, budget["timed"])
    cpu_before = cpu_seconds(pid)
    window = await blast(port, case, items, connections, seconds)
    cpu = cpu_seconds(pid) - cpu_before
    ordered = sorted(window.latencies)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    result = Measured(
        case=case.name,
        system=case.system,
        connections=connections,
        requests=window.requests,
        seconds=round(window.seconds, 2),
        per_second=round(window.requests / window.seconds, 1),
        p50_ms=round(cuts[49] * 1000, 1),
        p99_ms=round(cuts[98] * 1000, 1),
        cpu_ms_per_request=round(cpu / window.requests * 1000, 3),
        ran_out_of_requests=window.exhausted,
    )
    print(json.dumps(asdict(result)), flush=True)
    return result


def pgbench(url: str, seconds: float) -> dict[str, Any]:
    """`pgbench -i` on the scratch database, then the UPDATE + INSERT transaction over
    `PGBENCH_ROWS` rows with `PGBENCH_CLIENTS` clients."""
    target = make_url(url)
    where = ["-h", target.host or "127.0.0.1", "-p", str(target.port or 5432)]
    where += ["-U", target.username or "postgres", str(target.database)]
    env = {**os.environ, **({"PGPASSWORD": target.password} if target.password else {})}
    subprocess.run(["pgbench", "-i", "-q", *where], check=True, capture_output=True, env=env)
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as script:
        script.write(PGBENCH_SCRIPT.format(rows=PGBENCH_ROWS))
        script.flush()
        command = ["pgbench", "-n", "-M", "prepared", "-c", str(PGBENCH_CLIENTS), "-j", "2"]
        command += ["-T", str(max(1, round(seconds))), "-f", script.name, *where]
        run = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", run.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", run.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", run.stdout)
    if tps is None or latency is None or (failed and int(failed.group(1))):
        raise RequestFailed(f"pgbench: {run.stdout}\n{run.stderr}")
    result = {
        "case": "pgbench",
        "clients": PGBENCH_CLIENTS,
        "rows": PGBENCH_ROWS,
        "per_second": round(float(tps.group(1)), 1),
        "latency_avg_ms": float(latency.group(1)),
    }
    print(json.dumps(result), flush=True)
    return result


# --- statements per request, from PostgreSQL's log ------------------------------------------


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg", "postgresql")


@asynccontextmanager
async def statement_logging(admin_url: str, databases: list[str]) -> AsyncIterator[None]:
    """`log_statement = 'all'` on `databases` (new connections only) and a log line prefix that
    names the database, both undone on the way out."""
    connection = await asyncpg.connect(admin_url)
    try:
        prefix, source = await connection.fetchrow(
            "SELECT setting, sourcefile FROM pg_settings WHERE name = 'log_line_prefix'"
        )
        if prefix != LOG_PREFIX:
            await connection.execute(f"ALTER SYSTEM SET log_line_prefix = '{LOG_PREFIX}'")
            await connection.execute("SELECT pg_reload_conf()")
        for name in databases:
            await connection.execute(f"ALTER DATABASE \"{name}\" SET log_statement = 'all'")
        yield
    finally:
        for name in databases:
            await connection.execute(f'ALTER DATABASE "{name}" RESET log_statement')
        if prefix != LOG_PREFIX:
            if source and source.endswith("postgresql.auto.conf"):
                escaped = prefix.replace("'", "''")
                await connection.execute(f"ALTER SYSTEM SET log_line_prefix = '{escaped}'")
            else:
                await connection.execute("ALTER SYSTEM RESET log_line_prefix")
            await connection.execute("SELECT pg_reload_conf()")
        await connection.close()


class Logged(NamedTuple):
    pid: int  # the server process of the connection that sent it
    sql: str


def logged_statements(
    log: Path, offset: int, database: str, start: str, end: str, skip: int
) -> list[Logged]:
    """The statements of `database` logged between the marker lines `start` and `end`, leaving
    out the lines of the marker's own connection (`skip`, its backend pid). A statement that
    spans several lines is joined (its continuation lines start with a tab)."""
    with log.open("rb") as handle:
        handle.seek(offset)
        lines = handle.read().decode("utf-8", "replace").splitlines()
    statements: list[Logged] = []
    inside, current, pid = False, None, 0
    for line in lines:
        if line.startswith("\t") and current is not None:
            current.append(line.strip())
            continue
        if current is not None:
            statements.append(Logged(pid, " ".join(current)))
            current = None
        match = LOG_LINE.match(line)
        if match is None or match["db"] != database:
            continue
        if start in line:
            inside = True
            continue
        if end in line:
            return statements
        if inside and int(match["pid"]) != skip:
            current, pid = [match["sql"].strip()], int(match["pid"])
    raise RuntimeError(f"the marker {end} is not in {log}")


def empty_transactions(statements: list[Logged]) -> int:
    """BEGIN directly followed by ROLLBACK on one connection: nothing the log shows happened in
    between. SQLAlchemy's pool pre-ping is one (it sends an empty query, `;`, in a transaction
    of its own, and PostgreSQL does not log an empty query): three round trips, two logged."""
    previous: dict[int, str] = {}
    found = 0
    for pid, sql in statements:
        verb = sql.rstrip(";").strip().upper()
        found += verb == "ROLLBACK" and previous.get(pid) == "BEGIN"
        previous[pid] = verb
    return found


@dataclass
class Counted:
    statements_per_request: float
    empty_transactions_per_request: float
    statements: list[tuple[str, float]]  # each statement and how often it came per request


async def count_statements(url: str, log: Path, case: Case, port: int, requests: int) -> Counted:
    """Statements per request of `case`: a few requests to warm the server, then `requests` one
    at a time between two markers."""
    database = str(make_url(url).database)
    await blast(port, case, _items(case, WARM_REQUESTS), 1, 60)
    marker = await asyncpg.connect(_plain(url))
    try:
        offset = await asyncio.to_thread(os.path.getsize, log)
        start, end = f"bench-marker-{uuid.uuid4()}", f"bench-marker-{uuid.uuid4()}"
        await marker.execute(f"SELECT '{start}'")
        window = await blast(port, case, _items(case, requests), 1, 600)
        if window.requests != requests:
            raise RequestFailed(f"{case.name}: {window.requests} of {requests} requests sent")
        await marker.execute(f"SELECT '{end}'")
        for _ in range(50):  # the server writes its log a moment later
            try:
                found = logged_statements(
                    log, offset, database, start, end, marker.get_server_pid()
                )
                break
            except RuntimeError:
                await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"the marker {end} never reached {log}")
    finally:
        await marker.close()
    shapes = Counter(re.sub(r"\s+", " ", statement.sql)[:1000] for statement in found)
    return Counted(
        statements_per_request=round(len(found) / requests, 2),
        empty_transactions_per_request=round(empty_transactions(found) / requests, 2),
        statements=[(text, round(n / requests, 2)) for text, n in shapes.most_common()],
    )


def stand_in_calendar(directory: Path) -> dict[str, str]:
    """The environment that gives the servers a working-day calendar for this year and the next,
    where `chinesecalendar` has none yet (weekends and New Year's Day off, as the demo counts
    them), so that a lesson's confirmation deadline near a year's end can be counted; the same
    years are stood in for in this process, which records lessons too."""
    years = workdays.stand_in_for_unknown_years(local_date(utcnow()))
    if not years:
        return {}
    path = directory / "calendar.json"
    notices = {str(year): {"holidays": [f"{year}-01-01"], "workdays": []} for year in years}
    path.write_text(json.dumps(notices))
    return {"CALENDAR_FILE": str(path)}


# --- the run --------------------------------------------------------------------------------


@dataclass
class Setup:
    """Where the run works: the service's database, the scratch database of pgbench and the lean
    reference, and what the servers are started with."""

    url: str
    lean_url: str
    secret: str
    env: dict[str, str]
    port: int


@asynccontextmanager
async def servers(setup: Setup) -> AsyncIterator[dict[str, tuple[int, int]]]:
    """Both servers, one uvicorn worker each, until the block ends: system -> (port, pid)."""
    targets = {"lean": "bench.lean_app:app", "prepaidguard": "app.main:app"}
    started: dict[str, subprocess.Popen] = {}
    ports = {"prepaidguard": setup.port, "lean": setup.port + 1}
    try:
        for system, target in targets.items():
            started[system] = start_service(
                setup.url, setup.secret, ports[system], target=target, extra_env=setup.env
            )
            await wait_ready(ports[system])
        yield {system: (ports[system], process.pid) for system, process in started.items()}
    finally:
        for process in started.values():
            process.send_signal(signal.SIGINT)
        for process in started.values():
            process.wait(timeout=30)


class ConfirmPool:
    """Lessons pending confirmation, each handed out once to the confirmation case."""

    def __init__(self) -> None:
        self.lessons: list[tuple[uuid.UUID, uuid.UUID]] = []

    async def fill(self, url: str, schools: list[School], wanted: int) -> None:
        self.lessons = await pending_lessons(url, schools, wanted)

    def take(self, n: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
        taken, self.lessons = self.lessons[:n], self.lessons[n:]
        return taken


async def throughput(
    setup: Setup,
    args: argparse.Namespace,
    schools: list[School],
    pool: ConfirmPool,
    lean: list[Case],
    cases: list[Case],
) -> list[Measured]:
    """Every case timed: the lean reference first, PrepaidGuard's cases, the lean write again."""
    run = {
        "connections": args.connections,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "ceiling": args.rate_ceiling,
    }
    results: list[Measured] = []
    async with servers(setup) as running:
        for case in [*lean, *cases, lean[0]]:
            if case.name == "confirm":
                # Its timed run and its warm-up.
                wanted = int(args.rate_ceiling * (args.seconds + args.warmup)) + 2
                await pool.fill(setup.url, schools, wanted)
            results.append(await measure(*running[case.system], case, **run))
    return results


async def statements_per_request(
    setup: Setup, args: argparse.Namespace, lean: list[Case], schools: list[School]
) -> dict[str, Counted]:
    """Each case's statements per request, with logging on for the servers' new connections.

    PrepaidGuard's requests are counted on one caller each (one institution's key, one
    enrollment's parent), which the warm-up has just used: the steady state of a caller that sends
    requests one after another. A key or profile the process has not seen within its cache's
    lifetime costs its lookup on top (it shows in the timed run's CPU, not here)."""
    urls = {"prepaidguard": setup.url, "lean": setup.lean_url}
    admin_url = _plain(make_url(setup.url).set(database="postgres").render_as_string(False))
    databases = [str(make_url(url).database) for url in urls.values()]
    enrollment_id, parent_key = next(iter(schools[0].enrollments.items()))
    caller = School(schools[0].institution_id, schools[0].key, {enrollment_id: parent_key})
    pool = ConfirmPool()
    wanted = args.cases.split(",")
    cases = [case for case in prepaidguard_cases([caller], pool.take) if case.name in wanted]
    counted: dict[str, Counted] = {}
    async with statement_logging(admin_url, databases), servers(setup) as running:
        for case in [*lean, *cases]:
            if case.name == "confirm":
                await pool.fill(setup.url, [caller], WARM_REQUESTS + args.log_requests)
            port, _ = running[case.system]
            counted[case.name] = await count_statements(
                urls[case.system], args.pg_log, case, port, args.log_requests
            )
            found = counted[case.name]
            print(
                f"{case.name}: {found.statements_per_request} statements and "
                f"{found.empty_transactions_per_request} empty transactions per request",
                flush=True,
            )
    return counted


def with_ratios(results: list[Measured]) -> None:
    """Each case's rate over the lean write's (the mean of its two runs), and its CPU per request
    over the lean write's: the issue's reference for any ordinary request."""
    lean = [r for r in results if r.case == "lean_write"]
    rate = statistics.fmean(r.per_second for r in lean)
    cpu = statistics.fmean(r.cpu_ms_per_request for r in lean)
    for result in results:
        result.rate_vs_lean = round(result.per_second / rate, 3)
        result.cpu_vs_lean = round(result.cpu_ms_per_request / cpu, 2)


def table(pgbench_result: dict[str, Any], results: list[Measured]) -> str:
    head = (
        f"{'case':<26}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>12}"
        f"{'x lean rate':>13}{'x lean CPU':>12}{'statements':>12}{'empty txns':>12}"
    )
    lines = [head, f"{'pgbench (8 clients)':<26}{pgbench_result['per_second']:>9,.0f}"]
    for r in results:
        rate = f"{r.per_second:,.0f}" + ("*" if r.ran_out_of_requests else "")
        lines.append(
            f"{r.case:<26}{rate:>9}{r.p50_ms:>9}{r.p99_ms:>9}"
            f"{r.cpu_ms_per_request:>12.2f}{r.rate_vs_lean:>13.2f}{r.cpu_vs_lean:>12.1f}"
            f"{r.statements_per_request!s:>12}{r.empty_transactions_per_request!s:>12}"
        )
    if any(r.ran_out_of_requests for r in results):
        lines.append("* ran out of prepared requests before the time was up: raise --rate-ceiling")
    return "\n".join(lines)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/bench_requests"
    )
    parser.add_argument("--institutions", type=int, default=100)
    parser.add_argument("--enrollments", type=int, default=5, help="paid, per institution")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--rate-ceiling",
        type=int,
        default=1500,
        help="writes prepared per second of run; a faster server runs out and says so",
    )
    parser.add_argument("--log-requests", type=int, default=50, metavar="K")
    parser.add_argument(
        "--cases",
        default=",".join(PREPAIDGUARD_CASES),
        help="PrepaidGuard's cases to run (the lean reference and pgbench always run)",
    )
    parser.add_argument("--pg-log", type=Path, default=PG_LOG)
    parser.add_argument("--port", type=int, default=8941)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if unknown := set(args.cases.split(",")) - set(PREPAIDGUARD_CASES):
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    return args


def measured_commit() -> str | None:
    """The checkout measured, so that figures can be told apart as the code moves."""
    found = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip() or None


async def main() -> None:
    args = arguments()
    url = args.database_url
    lean_url = _plain(
        make_url(url)
        .set(database=f"{make_url(url).database}_pgbench")
        .render_as_string(hide_password=False)
    )
    calendar = stand_in_calendar(Path(tempfile.mkdtemp(prefix="bench-requests-")))
    setup = Setup(
        url=url,
        lean_url=lean_url,
        secret=secrets.token_urlsafe(32),
        env={"LEAN_DATABASE_URL": lean_url, **calendar},
        port=args.port,
    )

    load_at_start = os.getloadavg()
    await recreate_database(url)
    await recreate_database(lean_url)
    await asyncio.to_thread(migrate.upgrade, url)
    pgbench_result = pgbench(lean_url, args.seconds)
    connection = await asyncpg.connect(lean_url)
    await lean_app.create_tables(connection)
    await connection.close()
    print(f"loading {args.institutions} institutions", flush=True)
    started = time.perf_counter()
    schools = await load(url, setup.secret, args.institutions, args.enrollments)
    print(f"loaded in {time.perf_counter() - started:.0f} s", flush=True)

    pool = ConfirmPool()
    lean = lean_cases(random.Random(15))
    wanted = args.cases.split(",")
    cases = [case for case in prepaidguard_cases(schools, pool.take) if case.name in wanted]
    results = await throughput(setup, args, schools, pool, lean, cases)
    counted = await statements_per_request(setup, args, lean, schools)
    for result in results:
        result.statements_per_request = counted[result.case].statements_per_request
        result.empty_transactions_per_request = counted[result.case].empty_transactions_per_request
        result.statements = counted[result.case].statements
    with_ratios(results)
    print(table(pgbench_result, results))
    if args.out:
        report = {
            "date": date.today().isoformat(),
            "commit": measured_commit(),
            "institutions": args.institutions,
            "enrollments_per_institution": args.enrollments,
            "seconds": args.seconds,
            "connections": args.connections,
            "log_requests": args.log_requests,
            # Others' work on the machine shows here: this benchmark alone keeps about 2 busy.
            "load_average": {"start": load_at_start, "end": os.getloadavg()},
            "pgbench": pgbench_result,
            "cases": [asdict(r) for r in results],
        }
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    # A SIGTERM unwinds like Ctrl-C, so the servers stop and statement logging is turned off.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        asyncio.run(main())
    except RequestFailed as failure:
        sys.exit(f"no report: {failure}")
