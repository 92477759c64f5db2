"""The term day itself: what the replay makes through the API, in the order of a day, and what it
remembers of it to know, at the end, where every fen should be."""

import argparse
import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from stdnum.cn import ric, uscc

from app.kit.clock import SHANGHAI, utcnow
from app.ledger.types import AccountKind
from bank_simulator.keys import BankKeys
from bench.term.checks import (
    ReplayFailed,
    balances_by_kind,
    expectation_problem,
    identity_problem,
)
from bench.term.measure import Endpoint, T, fan_out

BANKS = ("ums", "iso20022", "gmbank")  # each bank's slug is its adapter's name, as in the demo
PRICE = 10_000
LESSONS_BOUGHT = 20
# How long a payment acknowledged by the service may take to show on its enrollment.
CREDIT_WAIT_SECONDS = 30


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
    """An institution as the replay made it: its bank, key and course, its families, and what it
    was paid out."""

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
        # Keyed by the kinds' plain strings, as the ledger's totals are.
        return {
            **{kind.value: 0 for kind in AccountKind},
            AccountKind.escrow_cash.value: paid - self.payout_fen - refunded,
            AccountKind.prepaid.value: paid - confirmed - refunded,
            AccountKind.releasable.value: confirmed - self.payout_fen,
        }


def student_id_numbers() -> Iterator[str]:
    """Distinct valid resident identity numbers (GB 11643), one per student of the run."""
    for n in itertools.count():
        born = date(2012, 1, 1) + timedelta(days=n // 999)
        body = f"110105{born:%Y%m%d}{n % 999 + 1:03d}"
        yield body + ric.calc_check_digit(body + "?")  # it reads all but the last character


def valid_uscc(n: int) -> str:
    body = f"91110108{n:09d}"
    return body + uscc.calc_check_digit(body)


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
        students = student_id_numbers()
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
                "payment (bank to acknowledgment)",
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
        """Each parent reads the enrollment until it shows paid. The bank's reply means "stored"
        (docs/banks.md): the credit follows a moment later, so a parent who looks at once may
        still see it awaiting payment; one who sees it unpaid after CREDIT_WAIT_SECONDS fails
        the run."""

        async def one(looking: tuple[School, Family]) -> None:
            _, family = looking
            deadline = time.monotonic() + CREDIT_WAIT_SECONDS
            while True:
                seen = await self.service.call(
                    "enrollment read (parent)",
                    "GET",
                    f"/v1/enrollments/{family.id}",
                    family.parent_key,
                )
                if (seen["status"], seen["paid_fen"]) == ("active", family.amount_fen):
                    return
                if time.monotonic() > deadline:
                    raise ReplayFailed(
                        f"enrollment {family.id} {CREDIT_WAIT_SECONDS} s after its payment: "
                        f"{seen['status']}, paid {seen['paid_fen']} of {family.amount_fen} fen"
                    )
                await asyncio.sleep(0.05)

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
            if payout["status"] != "settled":
                raise ReplayFailed(f"payout {payout['id']} is {payout['status']}")
            if school.payout_fen:  # the batch pays each institution once a business day
                raise ReplayFailed(f"institution {school.id} has a second payout {payout['id']}")
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
            cash = school.expected()[AccountKind.escrow_cash.value]
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
