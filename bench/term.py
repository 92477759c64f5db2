"""A day at the start of term, replayed against the real service, with the bank simulator playing
the banks; it ends by proving that no fen was lost.

    python -m bench.term --institutions 20 --database-url postgresql://postgres@127.0.0.1:5432/bench_term

Drops and recreates the database, migrates it, and starts the service as `--workers` uvicorn
processes (one per port, as behind a load balancer, like `bench.notifications`) and the bank
simulator in a process of its own (`bench.term_bank`), which sends its notifications to those
processes in turn. Then, all through the HTTP API, `--connections` requests at a time:

1. onboarding: three banks (ums, iso20022, gmbank) configured with keys made for the run, one
   jurisdiction, `--institutions` institutions spread over the banks, each with its key, its escrow
   account opened at the bank and a course; `--enrollments` enrollments per institution;
2. the payment burst: every parent pays at the bank, which notifies the service (the latency is
   the bank's call to the service until the credit is committed); then every parent reads the
   enrollment and must see it paid;
3. the evening peak: `--lessons` lesson records per enrollment, the first half one by one
   (`POST /v1/enrollments/{id}/lessons`), the rest in batches of up to `--batch-size` per
   institution (`POST /v1/lessons/batch`);
4. the parents confirm every lesson but each enrollment's last, left pending;
5. the T+1 payout batch: `release_payouts` as of tomorrow, `dispatch_instructions`, the banks
   execute, `poll_instructions`; every institution's payout must be exactly its confirmed lessons,
   and settled;
6. refunds: every `--refund-every`-th family asks for its money back, the institution approves,
   the instructions go to the banks, which pay, and each refund must be exactly what was paid less
   the lessons recorded, and settled;
7. statements: each bank sends the day's statement of each escrow account, reconciled on receipt.

It reports throughput and p50/p95/p99 per operation, and the CPU seconds and peak RSS of the
service's processes and of the bank's (from /proc). Then it checks, and exits non-zero with
`FAILED: ...` on the first thing wrong: every institution's journal verifies (the regulator's
`GET /v1/regulator/ledger/verify`); every institution's ledger holds DOMAIN.md's identity (escrow
cash = prepaid + releasable + in transit + suspense + own funds) and exactly the figures the replay
expects from what it did (paid, released, paid out, refunded: to the fen); each escrow account at
the bank holds what the ledger says; every statement reconciled clean and no break is open.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import httpx
from stdnum.cn import ric, uscc

from app.db import migrate
from app.db.engine import create_engine
from app.kit.clock import SHANGHAI, utcnow
from app.ledger import service as ledger
from app.ledger.types import AccountKind
from bank_simulator.keys import BankKeys, bank_keys
from bench.ledger_throughput import recreate_database
from bench.notifications import start_service

BANKS = ("ums", "iso20022", "gmbank")  # each bank's slug is its adapter's name, as in the demo
PRICE = 10_000
LESSONS_BOUGHT = 20
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


class ReplayFailed(Exception):
    """Something the replay did or found is wrong: the run fails with this message."""


# --- what the replay made, and what it expects of the ledger ----------------------------------


@dataclass
class Family:
    """One enrollment, its parent's key, and the lessons recorded for it."""

    id: str
    order_no: str
    amount_fen: int
    parent_key: str
    lessons: list[tuple[str, int]] = field(default_factory=list)  # (id, amount_fen)
    confirmed_fen: int = 0
    refund_fen: int = 0


@dataclass
class School:
    index: int
    slug: str
    escrow_account_no: str
    id: str = ""
    key: str = ""
    course_id: str = ""
    families: list[Family] = field(default_factory=list)
    payout_fen: int = 0

    def expected(self) -> dict[str, int]:
        """The ledger's balances by kind once the day is over, from what the replay did."""
        paid = sum(family.amount_fen for family in self.families)
        confirmed = sum(family.confirmed_fen for family in self.families)
        refunded = sum(family.refund_fen for family in self.families)
        return {
            **dict.fromkeys(AccountKind, 0),
            AccountKind.escrow_cash: paid - self.payout_fen - refunded,
            AccountKind.prepaid: paid - confirmed - refunded,
            AccountKind.releasable: confirmed - self.payout_fen,
        }


def identity_problem(totals: dict[str, int]) -> str | None:
    """DOMAIN.md's identity on one institution's balances by kind: escrow cash = prepaid +
    releasable + in transit + suspense + own funds."""
    held = sum(amount for kind, amount in totals.items() if kind != AccountKind.escrow_cash)
    cash = totals.get(AccountKind.escrow_cash, 0)
    if cash != held:
        return f"escrow cash {cash} fen but prepaid, releasable, in transit, suspense and own funds {held}"
    return None


def expectation_problem(expected: dict[str, int], totals: dict[str, int]) -> str | None:
    """Every kind's balance exactly as expected, a missing kind counting as 0."""
    wrong = {
        str(kind): (totals.get(kind, 0), amount)
        for kind, amount in expected.items()
        if totals.get(kind, 0) != amount
    }
    if wrong:
        return ", ".join(
            f"{kind} {got} fen, expected {want}" for kind, (got, want) in wrong.items()
        )
    return None


def school_id_numbers() -> Iterator[str]:
    """Distinct valid resident identity numbers (GB 11643), one per student of the run."""
    for n in itertools.count():
        born = date(2012, 1, 1) + timedelta(days=n // 999)
        body = f"110105{born:%Y%m%d}{n % 999 + 1:03d}"
        yield body + ric.calc_check_digit(body + "?")  # it reads all but the last character


def valid_uscc(n: int) -> str:
    body = f"91110108{n:09d}"
    return body + uscc.calc_check_digit(body)


# --- measurement -------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process so far (/proc/<pid>/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise ReplayFailed(f"no VmHWM for process {pid}")


def percentile(ordered: Sequence[float], share: float) -> float:
    """Nearest rank: the smallest value at or above `share` of them."""
    rank = max(1, -(-len(ordered) * share // 1))
    return ordered[int(rank) - 1]


@dataclass
class OpFigures:
    phase: str
    operation: str
    count: int
    items: int
    per_second: float
    items_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class PhaseFigures:
    phase: str
    seconds: float
    service_cpu_s: float
    bank_cpu_s: float


class Stats:
    """Latencies per operation, attributed to the phase running, and each phase's wall time and
    the CPU its processes spent in it."""

    def __init__(self, service_pids: list[int], bank_pid: int) -> None:
        self.service_pids, self.bank_pid = service_pids, bank_pid
        self._phase = "start"
        self._latencies: dict[tuple[str, str], list[float]] = {}
        self._items: dict[tuple[str, str], int] = {}
        self.phases: list[PhaseFigures] = []
        self.operations: list[OpFigures] = []

    def record(self, operation: str, seconds: float, items: int = 1) -> None:
        key = (self._phase, operation)
        self._latencies.setdefault(key, []).append(seconds)
        self._items[key] = self._items.get(key, 0) + items

    def _cpu(self) -> tuple[float, float]:
        return sum(map(cpu_seconds, self.service_pids)), cpu_seconds(self.bank_pid)

    @contextlib.asynccontextmanager
    async def phase(self, name: str) -> AsyncIterator[None]:
        self._phase = name
        service_before, bank_before = self._cpu()
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
        service_after, bank_after = self._cpu()
        figures = PhaseFigures(
            name,
            round(elapsed, 2),
            round(service_after - service_before, 2),
            round(bank_after - bank_before, 2),
        )
        self.phases.append(figures)
        print(
            f"{name}: {figures.seconds} s, service CPU {figures.service_cpu_s} s, "
            f"bank CPU {figures.bank_cpu_s} s",
            flush=True,
        )
        for (phase, operation), latencies in self._latencies.items():
            if phase == name:
                self.operations.append(self._figures(phase, operation, latencies, elapsed))

    def _figures(
        self, phase: str, operation: str, latencies: list[float], elapsed: float
    ) -> OpFigures:
        ordered = sorted(latencies)
        items = self._items[(phase, operation)]

        def ms(value: float) -> float:
            return round(value * 1000, 1)

        return OpFigures(
            phase=phase,
            operation=operation,
            count=len(ordered),
            items=items,
            per_second=round(len(ordered) / elapsed, 1),
            items_per_second=round(items / elapsed, 1),
            p50_ms=ms(percentile(ordered, 0.50)),
            p95_ms=ms(percentile(ordered, 0.95)),
            p99_ms=ms(percentile(ordered, 0.99)),
            max_ms=ms(ordered[-1]),
        )


# --- talking to the service and the bank --------------------------------------------------------


class Endpoint:
    """Requests to one party (the service's processes in turn, or the bank), each timed as an
    operation and checked for its status."""

    def __init__(self, ports: list[int], connections: int, stats: Stats) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._clients = [
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=600, trust_env=False
            )
            for port in ports
        ]
        self._turn = itertools.cycle(self._clients)
        self._stats = stats

    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        key: str | None = None,
        body: Any = None,
        expect: tuple[int, ...] = (200, 201),
        items: int = 1,
    ) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        started = time.perf_counter()
        response = await next(self._turn).request(method, path, json=body, headers=headers)
        self._stats.record(operation, time.perf_counter() - started, items)
        if response.status_code not in expect:
            raise ReplayFailed(f"{method} {path}: {response.status_code} {response.text[:400]}")
        return response.json()

    async def pages(self, operation: str, path: str, key: str, **params: Any) -> list[Any]:
        """Every item of a paginated list."""
        items: list[Any] = []
        cursor = None
        while True:
            query = {**params, "limit": 500, **({"cursor": cursor} if cursor else {})}
            page = await self.call(operation, "GET", f"{path}?{httpx.QueryParams(query)}", key)
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


async def fan_out(
    items: Sequence[T], work: Callable[[T], Awaitable[None]], connections: int
) -> None:
    """`work` on every item, `connections` at a time; the first failure stops the others."""
    pending = iter(items)

    async def worker() -> None:
        for item in pending:
            await work(item)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(connections, len(items))):
                group.create_task(worker())
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None


# --- the day ------------------------------------------------------------------------------------


class Replay:
    def __init__(
        self,
        args: argparse.Namespace,
        service: Endpoint,
        bank: Endpoint,
        admin: str,
        bank_url: str,
        keys: dict[str, BankKeys],
    ) -> None:
        self.args, self.service, self.bank, self.admin = args, service, bank, admin
        self.bank_url, self.keys = bank_url, keys
        self.schools = [
            School(n, BANKS[n % len(BANKS)], f"62{n % len(BANKS)}{n:09d}")
            for n in range(args.institutions)
        ]
        self.days: set[date] = set()  # Shanghai days with movements: each gets its statement

    @property
    def families(self) -> list[tuple[School, Family]]:
        return [(school, family) for school in self.schools for family in school.families]

    async def fan_out(self, items: Sequence[T], work: Callable[[T], Awaitable[None]]) -> None:
        await fan_out(items, work, self.args.connections)

    async def job(self, name: str, as_of: datetime | None = None) -> int:
        body = {} if as_of is None else {"as_of": as_of.isoformat()}
        done = await self.service.call(
            f"job {name}", "POST", f"/v1/admin/jobs/{name}", self.admin, body
        )
        return int(done["handled"])

    def note_today(self) -> None:
        self.days.add(utcnow().astimezone(SHANGHAI).date())

    # 1. onboarding

    async def onboard(self) -> None:
        for slug, keys in self.keys.items():
            await self.service.call(
                "bank configured",
                "PUT",
                f"/v1/banks/{slug}",
                self.admin,
                {
                    "adapter": keys.adapter,
                    "base_url": f"{self.bank_url}/banks/{slug}",
                    "config": keys.service_config,
                },
            )
        await self.service.call(
            "jurisdiction",
            "POST",
            "/v1/jurisdictions",
            self.admin,
            {"code": "TERM", "name": "Term replay county", "profile": {}},
        )
        await self.fan_out(self.schools, self.open_school)

    async def open_school(self, school: School) -> None:
        made = await self.service.call(
            "institution",
            "POST",
            "/v1/institutions",
            self.admin,
            {
                "name": f"Term school {school.index}",
                "uscc": valid_uscc(school.index),
                "license_no": f"TERM-{school.index}",
                "category": "non_subject",
                "jurisdiction_code": "TERM",
                "bank_slug": school.slug,
                "escrow_account_no": school.escrow_account_no,
                "basic_account_no": f"6228{school.index:010d}",
                "basic_account_name": f"Term school {school.index}",
            },
        )
        school.id = made["id"]
        issued = await self.service.call(
            "api key",
            "POST",
            "/v1/api-keys",
            self.admin,
            {"role": "institution", "name": "term", "institution_id": school.id},
        )
        school.key = issued["key"]
        await self.bank.call(
            "bank account",
            "POST",
            "/sim/accounts",
            body={"slug": school.slug, "account_no": school.escrow_account_no},
        )
        today = utcnow().astimezone(SHANGHAI).date()
        course = await self.service.call(
            "course",
            "POST",
            "/v1/courses",
            school.key,
            {
                "name": "Weiqi",
                "category": "non_subject",
                "lesson_price_fen": PRICE,
                "starts_on": today.isoformat(),
                "ends_on": (today + timedelta(days=80)).isoformat(),
            },
        )
        school.course_id = course["id"]

    async def enroll(self) -> None:
        students = school_id_numbers()
        orders = [
            (school, next(students))
            for school in self.schools
            for _ in range(self.args.enrollments)
        ]

        async def one(order: tuple[School, str]) -> None:
            school, id_number = order
            made = await self.service.call(
                "enrollment",
                "POST",
                "/v1/enrollments",
                school.key,
                {
                    "course_id": school.course_id,
                    "student": {"name": "Term student", "id_number": id_number},
                    "payer": {"name": "Term parent", "phone": "13800138000"},
                    "lessons": LESSONS_BOUGHT,
                    "loan_funded": False,
                },
            )
            if made["status"] != "awaiting_payment":
                raise ReplayFailed(f"enrollment {made['id']} is {made['status']}")
            school.families.append(
                Family(made["id"], made["order_no"], made["amount_fen"], made["parent_key"])
            )

        await self.fan_out(orders, one)

    # 2. the payment burst

    async def pay(self) -> None:
        self.note_today()

        async def one(paying: tuple[School, Family]) -> None:
            school, family = paying
            paid = await self.bank.call(
                "payment (bank to credit)",
                "POST",
                "/sim/payments",
                body={
                    "slug": school.slug,
                    "account_no": school.escrow_account_no,
                    "order_no": family.order_no,
                    "amount_fen": family.amount_fen,
                },
            )
            deliveries = paid["deliveries"]
            if not deliveries or not deliveries[-1]["acknowledged"]:
                raise ReplayFailed(f"payment of {family.order_no} not acknowledged: {deliveries}")

        await self.fan_out(self.families, one)

    async def parents_look(self) -> None:
        async def one(looking: tuple[School, Family]) -> None:
            _, family = looking
            seen = await self.service.call(
                "enrollment read (parent)", "GET", f"/v1/enrollments/{family.id}", family.parent_key
            )
            if (seen["status"], seen["paid_fen"]) != ("active", family.amount_fen):
                raise ReplayFailed(
                    f"enrollment {family.id} after its payment: {seen['status']}, "
                    f"paid {seen['paid_fen']} of {family.amount_fen} fen"
                )

        await self.fan_out(self.families, one)

    # 3. the evening peak

    async def lessons_single(self) -> None:
        singles = self.args.lessons // 2
        records = [(school, family, n) for school, family in self.families for n in range(singles)]

        async def one(record: tuple[School, Family, int]) -> None:
            school, family, n = record
            made = await self.service.call(
                "lesson (single)",
                "POST",
                f"/v1/enrollments/{family.id}/lessons",
                school.key,
                {"lesson_key": f"{family.id}-{n}", "occurred_at": utcnow().isoformat(), "count": 1},
            )
            if made["status"] != "pending_confirmation":
                raise ReplayFailed(f"lesson {made['id']} recorded as {made['status']}")
            family.lessons.append((made["id"], made["amount_fen"]))

        await self.fan_out(records, one)

    async def lessons_batch(self) -> None:
        first = self.args.lessons // 2
        batches: list[tuple[School, list[tuple[Family, int]]]] = []
        for school in self.schools:
            records = [
                (family, n) for family in school.families for n in range(first, self.args.lessons)
            ]
            for start in range(0, len(records), self.args.batch_size):
                batches.append((school, records[start : start + self.args.batch_size]))

        async def one(batch: tuple[School, list[tuple[Family, int]]]) -> None:
            school, records = batch
            now = utcnow().isoformat()
            done = await self.service.call(
                "lesson batch",
                "POST",
                "/v1/lessons/batch",
                school.key,
                {
                    "items": [
                        {
                            "enrollment_id": family.id,
                            "lesson_key": f"{family.id}-{n}",
                            "occurred_at": now,
                            "count": 1,
                        }
                        for family, n in records
                    ]
                },
                items=len(records),
            )
            for (family, _), result in zip(records, done["results"], strict=True):
                if result["status"] != "accepted":
                    raise ReplayFailed(f"batch lesson of {family.id}: {result}")
                family.lessons.append((result["id"], result["amount_fen"]))

        await self.fan_out(batches, one)

    # 4. confirmations

    async def confirm(self) -> None:
        # Every lesson but each enrollment's last: that one stays pending (held in prepaid).
        asked = [(family, lesson) for _, family in self.families for lesson in family.lessons[:-1]]

        async def one(asking: tuple[Family, tuple[str, int]]) -> None:
            family, (lesson_id, amount_fen) = asking
            seen = await self.service.call(
                "confirmation (parent)",
                "POST",
                f"/v1/lessons/{lesson_id}/confirm",
                family.parent_key,
            )
            if seen["status"] != "confirmed":
                raise ReplayFailed(f"lesson {lesson_id} confirmed is {seen['status']}")
            family.confirmed_fen += amount_fen

        await self.fan_out(asked, one)

    # 5. and 6. money out: the T+1 payout batch, then refunds

    async def banks_execute(self, kind: str) -> None:
        """Each bank executes what it accepted and reports (iso20022 and gmbank push results;
        ums is asked, by the poll)."""
        await self.job("dispatch_instructions")
        for slug in self.keys:
            settled = await self.bank.call(
                f"bank executes {kind}s",
                "POST",
                "/sim/settle",
                body={"slug": slug, "outcome": "success"},
            )
            for message in settled["messages"]:
                for delivery in message["deliveries"]:
                    if not delivery["acknowledged"]:
                        raise ReplayFailed(f"{slug} result not acknowledged: {delivery}")
        await self.job("poll_instructions")

    async def settled(self, path: str, kind: str) -> list[dict[str, Any]]:
        """Every payout or refund, once none is on its way any more (the poll asks ums again,
        at most `--settle-seconds`)."""
        deadline = time.monotonic() + self.args.settle_seconds
        while True:
            items = await self.service.pages(f"{kind} list", path, self.admin)
            if all(item["status"] in ("settled", "failed", "returned") for item in items):
                return items
            if time.monotonic() > deadline:
                waiting = [item["id"] for item in items if item["status"] not in ("settled",)]
                raise ReplayFailed(f"{kind}s not settled in time: {waiting[:5]}")
            await asyncio.sleep(1)
            await self.job("poll_instructions")

    async def payouts(self) -> None:
        released = await self.job("release_payouts", utcnow() + timedelta(days=1))
        await self.banks_execute("payout")
        by_school = {school.id: school for school in self.schools}
        for payout in await self.settled("/v1/payouts", "payout"):
            school = by_school[payout["institution_id"]]
            if payout["status"] != "settled" or school.payout_fen:
                raise ReplayFailed(f"payout {payout['id']} is {payout['status']}, one of several?")
            school.payout_fen = payout["amount_fen"]
        for school in self.schools:
            owed = sum(family.confirmed_fen for family in school.families)
            if school.payout_fen != owed:
                raise ReplayFailed(
                    f"institution {school.id} was paid out {school.payout_fen} fen for "
                    f"{owed} fen of confirmed lessons (release_payouts handled {released})"
                )

    async def refunds(self) -> None:
        leaving = self.families[:: self.args.refund_every]

        async def one(asking: tuple[School, Family]) -> None:
            school, family = asking
            refund = await self.service.call(
                "refund request (parent)",
                "POST",
                f"/v1/enrollments/{family.id}/refunds",
                family.parent_key,
                {"reason": "moving away"},
            )
            owed = family.amount_fen - sum(amount for _, amount in family.lessons)
            if refund["amount_fen"] != owed:
                raise ReplayFailed(
                    f"refund {refund['id']}: {refund['amount_fen']} fen, owed {owed}"
                )
            await self.service.call(
                "refund approval", "POST", f"/v1/refunds/{refund['id']}/approve", school.key
            )
            family.refund_fen = owed

        await self.fan_out(leaving, one)
        await self.banks_execute("refund")
        refunds = await self.settled("/v1/refunds", "refund")
        if len(refunds) != len(leaving) or any(r["status"] != "settled" for r in refunds):
            raise ReplayFailed(f"{len(leaving)} refunds asked, now {refunds}")

    # 7. statements and reconciliation

    async def statements(self) -> None:
        self.note_today()
        sent = [(school, day) for school in self.schools for day in sorted(self.days)]

        async def one(sending: tuple[School, date]) -> None:
            school, day = sending
            answer = await self.bank.call(
                "statement (sent and reconciled)",
                "POST",
                f"/sim/statements/{school.slug}/{school.escrow_account_no}/{day}/send",
            )
            run = answer["body"]
            if answer["status_code"] != 200 or run["status"] != "clean":
                raise ReplayFailed(f"statement of {school.id} for {day}: {answer}")

        await self.fan_out(sent, one)

    # the checks

    async def check(self, database_url: str) -> list[str]:
        """What must hold at the end; raises on the first failure, returns what it checked."""
        verified = await self.service.pages(
            "ledger verify (regulator)", "/v1/regulator/ledger/verify", self.admin
        )
        broken = [item for item in verified if not item["intact"]]
        if broken or len(verified) != len(self.schools):
            raise ReplayFailed(f"ledger verify: {len(verified)} journals, broken: {broken[:3]}")
        totals = await balances_by_kind(database_url, [UUID(s.id) for s in self.schools])
        for school in self.schools:
            found = totals[UUID(school.id)]
            problem = identity_problem(found) or expectation_problem(school.expected(), found)
            if problem:
                raise ReplayFailed(f"institution {school.id}: {problem}")

        async def at_bank(school: School) -> None:
            account = await self.bank.call(
                "bank balance", "GET", f"/sim/accounts/{school.slug}/{school.escrow_account_no}"
            )
            cash = school.expected()[AccountKind.escrow_cash]
            if account["balance_fen"] != cash:
                raise ReplayFailed(
                    f"institution {school.id}: the bank holds {account['balance_fen']} fen, "
                    f"the ledger {cash}"
                )

        await self.fan_out(self.schools, at_bank)
        still_open = await self.service.pages(
            "open breaks", "/v1/regulator/reconciliations/breaks", self.admin, status="open"
        )
        if still_open:
            raise ReplayFailed(f"{len(still_open)} reconciliation breaks open: {still_open[:3]}")
        paid = sum(family.amount_fen for _, family in self.families)
        return [
            f"{len(verified)} journals verified intact",
            f"the ledger identity and the expected balances hold for {len(self.schools)} "
            f"institutions, {paid} fen paid in",
            "every escrow account at the bank holds what the ledger says",
            f"{len(self.schools) * len(self.days)} statements reconciled clean, no break open",
        ]


async def balances_by_kind(url: str, institution_ids: list[UUID]) -> dict[UUID, dict[str, int]]:
    """Read straight from the database: no API gives the balances of every kind."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await ledger.balances_by_kind_of(connection, institution_ids)
    finally:
        await engine.dispose()


# --- the processes ------------------------------------------------------------------------------


def start_bank(
    config: Path, port: int, service_ports: list[int], connections: int
) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.term_bank",
            "--config",
            str(config),
            "--port",
            str(port),
            "--service-ports",
            ",".join(map(str, service_ports)),
            "--connections",
            str(connections),
        ]
    )


def simulator_file(directory: Path, service_port: int, keys: dict[str, BankKeys]) -> Path:
    """The simulator's config with the bank halves of the keys (test keys, made for this run)."""
    path = directory / "term-banks.json"
    config = {
        "service_url": f"http://127.0.0.1:{service_port}",  # the port is chosen per request
        "banks": [
            {"slug": slug, "adapter": bank.adapter, **bank.simulator_config}
            for slug, bank in keys.items()
        ],
        "delivery_backoff_seconds": 0.05,
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


async def wait_up(process: subprocess.Popen, url: str, seconds: float = 120) -> None:
    """Until `url` answers 200; a process that exits or takes longer fails the run. Starting is
    slow when the machine is shared: importing the app alone is 2 s of CPU."""
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ReplayFailed(f"{url}: the process exited with {process.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise ReplayFailed(f"{url}: not up after {seconds} s")


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


# --- the run ------------------------------------------------------------------------------------


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.term",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/bench_term")
    parser.add_argument("--institutions", type=int, default=20)
    parser.add_argument("--enrollments", type=int, default=20, help="per institution")
    parser.add_argument(
        "--lessons", type=int, default=4, help="per enrollment: half single, half batched"
    )
    parser.add_argument("--batch-size", type=int, default=100, help="at most 1,000")
    parser.add_argument("--refund-every", type=int, default=10, help="every n-th family refunds")
    parser.add_argument("--workers", type=int, default=2, help="service processes")
    parser.add_argument("--connections", type=int, default=32, help="requests at a time")
    parser.add_argument("--port", type=int, default=8930, help="the bank's; the service's follow")
    parser.add_argument("--settle-seconds", type=float, default=60)
    parser.add_argument("--out", type=Path, help="the figures as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= 1000 or args.lessons < 1 or args.lessons > LESSONS_BOUGHT:
        parser.error("--batch-size 1 to 1,000, --lessons 1 to 20")
    if min(args.institutions, args.enrollments, args.refund_every, args.workers) < 1:
        parser.error("counts must be at least 1")
    return args


async def replay(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    await recreate_database(args.database_url)
    await asyncio.to_thread(migrate.upgrade, args.database_url)
    setup = {"database_s": round(time.perf_counter() - started, 2)}
    secret_key, admin = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    keys = {slug: bank_keys(slug) for slug in BANKS}
    bank_port, ports = args.port, [args.port + 1 + n for n in range(args.workers)]
    with tempfile.TemporaryDirectory(prefix="bench-term-") as directory:
        config = simulator_file(Path(directory), ports[0], keys)
        services = [
            start_service(args.database_url, secret_key, port, {"ADMIN_API_KEY": admin})
            for port in ports
        ]
        bank_process = start_bank(config, bank_port, ports, args.connections)
        processes = [*services, bank_process]
        try:
            for process, port in zip(services, ports, strict=True):
                await wait_up(process, f"http://127.0.0.1:{port}/healthz")
            await wait_up(bank_process, f"http://127.0.0.1:{bank_port}/sim/messages")
            setup["processes_s"] = round(time.perf_counter() - started - setup["database_s"], 2)
            print(
                f"setup: database made and migrated in {setup['database_s']} s, "
                f"{args.workers} service processes and the bank up in {setup['processes_s']} s",
                flush=True,
            )
            stats = Stats([process.pid for process in services], bank_process.pid)
            service = Endpoint(ports, args.connections, stats)
            bank = Endpoint([bank_port], args.connections, stats)
            try:
                day = Replay(args, service, bank, admin, f"http://127.0.0.1:{bank_port}", keys)
                checked = await run_day(day, stats, args.database_url)
            finally:
                await service.aclose()
                await bank.aclose()
            memory = {
                "service_peak_rss_mib": [round(peak_rss_mib(p.pid), 1) for p in services],
                "service_cpu_s": [round(cpu_seconds(p.pid), 2) for p in services],
                "bank_peak_rss_mib": round(peak_rss_mib(bank_process.pid), 1),
                "bank_cpu_s": round(cpu_seconds(bank_process.pid), 2),
            }
        finally:
            stop(processes)
    return {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "setup": setup,
        "phases": [asdict(phase) for phase in stats.phases],
        "operations": [asdict(operation) for operation in stats.operations],
        "processes": memory,
        "checked": checked,
    }


async def run_day(day: Replay, stats: Stats, database_url: str) -> list[str]:
    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("onboarding", day.onboard),
        ("enrollment", day.enroll),
        ("payment burst", day.pay),
        ("parents see the payment", day.parents_look),
        ("evening peak: single lessons", day.lessons_single),
        ("evening peak: lesson batches", day.lessons_batch),
        ("confirmations", day.confirm),
        ("T+1 payout batch", day.payouts),
        ("refunds", day.refunds),
        ("statements and reconciliation", day.statements),
    ]
    for name, step in steps:
        async with stats.phase(name):
            await step()
    async with stats.phase("checks"):
        return await day.check(database_url)


def report(figures: dict[str, Any]) -> None:
    print(
        f"\n{'phase / operation':<52} {'count':>6} {'per s':>8} {'items/s':>8} "
        f"{'p50':>7} {'p95':>7} {'p99':>7} ms"
    )
    for phase in figures["phases"]:
        print(
            f"{phase['phase']} ({phase['seconds']} s; CPU s: service {phase['service_cpu_s']}, "
            f"bank {phase['bank_cpu_s']})"
        )
        for op in figures["operations"]:
            if op["phase"] == phase["phase"]:
                print(
                    f"  {op['operation']:<50} {op['count']:>6} {op['per_second']:>8} "
                    f"{op['items_per_second']:>8} {op['p50_ms']:>7} {op['p95_ms']:>7} "
                    f"{op['p99_ms']:>7}"
                )
    print(f"\nprocesses: {json.dumps(figures['processes'])}")
    for line in figures["checked"]:
        print(f"PASSED: {line}")


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    try:
        figures = asyncio.run(replay(args))
    except ReplayFailed as failure:
        print(f"FAILED: {failure}", flush=True)
        raise SystemExit(1) from None
    report(figures)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
