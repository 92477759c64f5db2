"""The regulator's institution list with every balance view, through HTTP, on PostgreSQL.

    python -m bench.regulator_list --database-url postgresql://postgres@127.0.0.1:5432/bench_regulator

Drops and recreates the database, migrates it, and bulk-loads one jurisdiction of `--institutions`
institutions with realistic ledgers straight into the service's tables (COPY through asyncpg): per
institution its six standard accounts, `--enrollments` paid enrollments of a course, each with its
prepaid account, its payment, two lessons released (one today, not yet payable under T+1), and one
settled payout this month; a hold-back percentage, so the receipts are read too. Journals are
hash-chained with the ledger's own functions, and balances, heads and the enrollments' counters
agree with them (a sample is verified with `ledger.verify` before the clock starts). The ledger's
guard triggers are off for the load only (`session_replication_role = replica`, as tests/ledger
tampers), because they allow a balance to change only by the service's own write path.

Then it starts the service (uvicorn, one worker) and, with a regulator's key, pages through all the
institutions with `GET /v1/regulator/institutions` at `limit` 50 and 500, one request at a time,
`--passes` times each, and reports p50/p95/p99 per request. In the same run, a plain `SELECT` of
the same rows (each page's institutions and their ledger totals by kind, one statement on asyncpg)
pages through them the same way, as the floor any service over this schema has to stand on.
"""

import argparse
import asyncio
import hashlib
import json
import os
import random
import statistics
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.auth.service import issue_key
from app.db import migrate
from app.db.engine import create_engine
from app.db.unit import Database
from app.jurisdictions.profile import RuleProfile
from app.kit.clock import utcnow
from app.kit.workdays import local_date
from app.ledger import service as ledger
from app.ledger.books import INSTITUTION_KINDS
from app.ledger.chain import GENESIS_HASH, chain_hash, content_hash
from app.ledger.types import AccountKind, Posting
from app.models.api_key import Role
from bench.ledger_throughput import recreate_database
from bench.notifications import start_service

SECRET_KEY = "bench-regulator-list-secret-key-0123456789abcdef"
CODE = "BENCH"
PRICE = 10_000
LESSONS = 20


def _quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "requests": len(ordered),
        "p50_ms": round(cuts[49] * 1000, 1),
        "p95_ms": round(cuts[94] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


class Journal:
    """One institution's journal, written as the ledger writes it: every entry's content digest and
    link computed with the ledger's own functions, the balances kept."""

    def __init__(self, institution_id: uuid.UUID, accounts: dict[str, tuple[uuid.UUID, int]]):
        self.institution_id = institution_id
        self.accounts = accounts  # code -> (id, normal)
        self.balances: dict[uuid.UUID, int] = {}
        self.last_seq_of: dict[uuid.UUID, int] = {}
        self.seq, self.hash = 0, GENESIS_HASH
        self.entries: list[tuple[Any, ...]] = []
        self.postings: list[tuple[Any, ...]] = []

    def post(self, key: str, kind: str, debit: str, credit: str, amount: int, at) -> None:
        debit_id, credit_id = self.accounts[debit][0], self.accounts[credit][0]
        lines = (Posting.debit(debit_id, amount), Posting.credit(credit_id, amount))
        digest = content_hash(self.institution_id, key, kind, None, lines)
        prev, self.seq = self.hash, self.seq + 1
        self.hash = chain_hash(prev, self.seq, at, digest)
        self.entries.append(
            (self.institution_id, self.seq, key, kind, None, at, 2, digest, prev, self.hash)
        )
        for line_no, line in enumerate(lines):
            self.postings.append(
                (self.institution_id, self.seq, line_no, line.account_id, line.amount_fen)
            )
            self.balances[line.account_id] = self.balances.get(line.account_id, 0) + line.amount_fen
            self.last_seq_of[line.account_id] = self.seq


async def load(url: str, institutions: int, enrollments: int) -> str:
    """The jurisdiction, its institutions and their ledgers; returns a regulator's key."""
    now = utcnow()
    today = local_date(now)
    rng = random.Random(11)
    rows: dict[str, list[tuple[Any, ...]]] = {
        "institutions": [],
        "ledger_heads": [],
        "ledger_accounts": [],
        "ledger_entries": [],
        "ledger_postings": [],
        "courses": [],
        "enrollments": [],
        "payouts": [],
    }
    for number in range(institutions):
        institution_id = uuid.uuid4()
        uscc = f"91{number:016d}"
        bank = ("ums", "iso20022", "gmbank")[number % 3]
        created = now - timedelta(days=90)
        rows["institutions"].append(
            (
                institution_id,
                f"Bench school {number}",
                uscc,
                f"L{number:08d}",
                "non_subject",
                CODE,
                bank,
                f"6222{number:015d}",
                f"6228{number:015d}",
                f"Bench school {number}",
                "active",
                "none",
                "GREEN",
                None,
                None,
                None,
                created,
                created,
            )
        )
        specs: list[tuple[AccountKind, str | None]] = [(k, None) for k in INSTITUTION_KINDS]
        enrollment_ids = [uuid.uuid4() for _ in range(enrollments)]
        specs += [(AccountKind.prepaid, str(e)) for e in enrollment_ids]
        accounts = {}
        for kind, ref in specs:
            code = kind if ref is None else f"{kind}:{ref}"
            accounts[code] = (uuid.uuid4(), kind.normal, kind)
        journal = Journal(institution_id, {c: (a[0], a[1]) for c, a in accounts.items()})
        course_id = uuid.uuid4()
        rows["courses"].append(
            (institution_id, course_id, "Piano", "non_subject", PRICE, today, today, created)
        )
        for index, enrollment_id in enumerate(enrollment_ids):
            amount = LESSONS * PRICE
            paid_at = now - timedelta(days=rng.randrange(20, 80), seconds=rng.randrange(86_400))
            prepaid = f"prepaid:{enrollment_id}"
            journal.post(f"pay:{enrollment_id}", "payment", "escrow_cash", prepaid, amount, paid_at)
            for lesson, ago in enumerate((timedelta(days=10), timedelta(hours=1))):
                journal.post(
                    f"lesson:{enrollment_id}:{lesson}:release",
                    "lesson_release",
                    prepaid,
                    "releasable",
                    PRICE,
                    now - ago - timedelta(seconds=index),
                )
            digest = hashlib.sha256(enrollment_id.bytes).hexdigest()
            rows["enrollments"].append(
                (
                    institution_id,
                    enrollment_id,
                    course_id,
                    f"O{enrollment_id.hex[:20]}",
                    "Xiao Ming",
                    digest,
                    "110105********1234",
                    "Wang Fang",
                    "13800000000",
                    LESSONS,
                    PRICE,
                    amount,
                    False,
                    "active",
                    amount,
                    2,
                    0,
                    0,
                    2 * PRICE,
                    0,
                    0,
                    0,
                    paid_at,
                    today - timedelta(days=30),
                    today + timedelta(days=60),
                    paid_at,
                    None,
                    None,
                    None,
                    None,
                    paid_at,
                    paid_at,
                )
            )
        # One payout this month, settled: reserved from releasable, then out of escrow cash.
        payout_at = now - timedelta(hours=2)
        journal.post(
            f"payout:{institution_id}:reserve",
            "payout",
            "releasable",
            "payout_in_transit",
            PRICE,
            payout_at,
        )
        journal.post(
            f"payout:{institution_id}:settle",
            "payout_settle",
            "payout_in_transit",
            "escrow_cash",
            PRICE,
            payout_at,
        )
        rows["payouts"].append(
            (
                institution_id,
                uuid.uuid4(),
                PRICE,
                "settled",
                "request",
                local_date(payout_at),
                uuid.uuid4(),
                f"P{number:012d}",
                payout_at,
                payout_at,
            )
        )
        for code, (account_id, normal, kind) in accounts.items():
            rows["ledger_accounts"].append(
                (
                    institution_id,
                    account_id,
                    code,
                    kind.value,
                    normal,
                    0,
                    journal.balances.get(account_id, 0),
                    journal.last_seq_of.get(account_id, 0),
                    created,
                )
            )
        rows["ledger_heads"].append((institution_id, journal.seq, journal.hash, now))
        rows["ledger_entries"] += journal.entries
        rows["ledger_postings"] += journal.postings

    columns = {
        "institutions": (
            "id name uscc license_no category jurisdiction_code bank_slug escrow_account_no "
            "basic_account_no basic_account_name status list_status alert_level "
            "min_balance_floor_fen bank_balance_fen bank_balance_as_of created_at updated_at"
        ),
        "ledger_heads": "institution_id last_seq last_hash updated_at",
        "ledger_accounts": (
            "institution_id id code kind normal lower_limit_fen balance_fen last_seq created_at"
        ),
        "ledger_entries": (
            "institution_id seq idempotency_key kind memo posted_at posting_count content_hash "
            "prev_hash hash"
        ),
        "ledger_postings": "institution_id entry_seq line_no account_id amount_fen",
        "courses": "institution_id id name category lesson_price_fen starts_on ends_on created_at",
        "enrollments": (
            "institution_id id course_id order_no student_name student_id_hash student_id_masked "
            "payer_name payer_phone lessons lesson_price_fen amount_fen loan_funded status "
            "paid_fen lessons_confirmed lessons_pending lessons_disputed confirmed_fen "
            "pending_fen disputed_fen refunded_fen expires_at valid_from valid_until paid_at "
            "payment_reference payment_channel_order_id payment_payer_name "
            "payment_payer_account_no created_at updated_at"
        ),
        "payouts": (
            "institution_id id amount_fen status trigger business_date transfer_id "
            "instruction_id created_at updated_at"
        ),
    }
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        async with connection.transaction():
            await connection.execute(
                "INSERT INTO jurisdictions (code, name, profile, created_at, updated_at) "
                "VALUES ($1, $2, $3, $4, $4)",
                CODE,
                "Bench county",
                json.dumps(RuleProfile(holdback_pct=10).model_dump()),
                now,
            )
            # The guards allow balances and heads to move only by the ledger's write path.
            await connection.execute("SET LOCAL session_replication_role = replica")
            for table, names in columns.items():
                await connection.copy_records_to_table(
                    table, records=rows[table], columns=names.split()
                )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()

    engine = create_engine(url)
    try:
        async with engine.connect() as sample:
            for row in rows["institutions"][:: max(1, institutions // 20)]:
                report = await ledger.verify(sample, row[0])
                assert report.intact, report
                await sample.rollback()

        async def regulator_key(session):
            _, key = await issue_key(
                session, SECRET_KEY, role=Role.regulator, name="bench", jurisdiction_code=CODE
            )
            return key

        return await Database(engine).run(regulator_key)
    finally:
        await engine.dispose()


async def page_through_http(base: str, key: str, limit: int) -> tuple[list[float], int]:
    timings, seen, cursor = [], 0, None
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        while True:
            params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
            started = time.perf_counter()
            response = await client.get(
                "/v1/regulator/institutions",
                params=params,
                headers={"Authorization": f"Bearer {key}"},
            )
            timings.append(time.perf_counter() - started)
            response.raise_for_status()
            body = response.json()
            seen += len(body["items"])
            cursor = body["next_cursor"]
            if cursor is None:
                return timings, seen


PLAIN = """
SELECT i.*, t.kind, t.total
FROM (SELECT * FROM institutions WHERE jurisdiction_code = $1 AND id > $2 ORDER BY id LIMIT $3) i
CROSS JOIN LATERAL (
    SELECT a.kind, sum(a.balance_fen * a.normal) AS total
    FROM ledger_accounts a WHERE a.institution_id = i.id GROUP BY a.kind
) t
ORDER BY i.id
"""


async def page_through_sql(url: str, limit: int) -> tuple[list[float], int]:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    timings, seen, after = [], 0, uuid.UUID(int=0)
    try:
        while True:
            started = time.perf_counter()
            rows = await connection.fetch(PLAIN, CODE, after, limit)
            timings.append(time.perf_counter() - started)
            ids = list(dict.fromkeys(row["id"] for row in rows))
            if not ids:
                return timings, seen
            seen += len(ids)
            after = ids[-1]
    finally:
        await connection.close()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/bench_regulator"
    )
    parser.add_argument("--institutions", type=int, default=10_000)
    parser.add_argument("--enrollments", type=int, default=3)
    parser.add_argument("--passes", type=int, default=3, help="times to page through, per limit")
    parser.add_argument("--port", type=int, default=8731)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    await recreate_database(args.database_url)
    await asyncio.to_thread(migrate.upgrade, args.database_url)
    started = time.perf_counter()
    key = await load(args.database_url, args.institutions, args.enrollments)
    loaded_s = time.perf_counter() - started
    print(f"loaded {args.institutions} institutions in {loaded_s:.1f} s")

    os.environ["SECRET_KEY"] = SECRET_KEY
    service = start_service(args.database_url, SECRET_KEY, args.port)
    base = f"http://127.0.0.1:{args.port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            for _ in range(300):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        results: dict[str, Any] = {
            "institutions": args.institutions,
            "enrollments_per_institution": args.enrollments,
            "load_seconds": round(loaded_s, 1),
            "date": date.today().isoformat(),
        }
        await page_through_http(base, key, 50)  # warm-up: connections, caches, the plans
        for limit in (50, 500):
            http: list[float] = []
            sql: list[float] = []
            for _ in range(args.passes):
                timings, seen = await page_through_http(base, key, limit)
                assert seen == args.institutions, seen
                http += timings
                timings, seen = await page_through_sql(args.database_url, limit)
                assert seen == args.institutions, seen
                sql += timings
            results[f"http_limit_{limit}"] = _quantiles(http)
            results[f"plain_select_limit_{limit}"] = _quantiles(sql)
            print(f"limit {limit}: HTTP {results[f'http_limit_{limit}']}")
            print(f"limit {limit}: plain SELECT {results[f'plain_select_limit_{limit}']}")
    finally:
        service.terminate()
        service.wait(timeout=30)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
