"""Sharded by institution (docs/deploy.md, Citus), a transaction that writes the rows of two
institutions spans two shards: a distributed transaction, two-phase commit and lock waits across
nodes. This test runs a term for two institutions of one bank through the API, the bank simulator
and every job, on a database whose tables record each row written with the writing transaction,
and holds every transaction to one institution.

Tables with no institution column are either reference tables (replicated, written by the
operator's setup only), tables that stay on the coordinator, or holes: `NOT_DISTRIBUTED` says which
is which, and a table written in an institution's transaction that it does not name fails the
test."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import GroupCommitScope, Settings
from app.db import migrate
from app.db.engine import create_engine
from app.db.unit import Database
from app.kit.clock import SHANGHAI, utcnow
from app.models.api_key import Role
from app.payments.service import BankPayment, credit_payment
from tests.banks.simulated import Simulated, simulated_bank
from tests.factories import auth, make_institution, make_key, make_paid_enrollment, make_world
from tests.lessons.helpers import paid_enrollment, record
from tests.scratch import scratch_database

pytestmark = pytest.mark.postgres_only

# Tables whose rows name no institution, and why a transaction of an institution may write them
# (docs/deploy.md, "Sharding by institution"). "hole": written in an institution's
# transaction today, so on Citus that transaction reaches a second node; to fix before sharding.
NOT_DISTRIBUTED = {
    "jurisdictions": "reference: the operator's setup",
    "banks": "reference: the operator's setup (audited on the platform's chain)",
    "bank_nonces": "coordinator: a bank's replay guard, keyed by bank, written before routing",
    "security_events": "coordinator: a bank's refused messages, keyed by bank",
    "idempotency_records": "hole: the replay record, keyed by caller, in the request's transaction",
    "bank_messages": "hole: the inbox row's status moves in the credit's transaction",
    "api_keys": "hole: a parent's key (no institution_id) is issued with its enrollment",
}

# Batch jobs that move no money and write several institutions' rows in one transaction: on Citus
# each is a multi-shard transaction (two-phase commit across the workers holding them). Allowed,
# listed in docs/deploy.md; any other is a finding. (step, the tables it writes)
KNOWN_MULTI_SHARD = {
    # A batch of due instructions claimed (status, attempts) in one transaction, across banks'
    # institutions; each is then sent and recorded in a transaction of its own.
    ("dispatch_instructions", "instructions"),
    ("poll_instructions", "instructions"),
    # A batch of unpaid enrollments cancelled together (no money was ever in them).
    ("expire_enrollments", "enrollments"),
    # One batch of institutions' missing statement runs, with their breaks.
    ("watch_reconciliation", "reconciliation_breaks,reconciliation_runs"),
    # Every institution's head published as the day's checkpoint in one INSERT ... SELECT.
    ("checkpoint_ledgers", "ledger_checkpoints"),
}

RECORDER = (
    """CREATE TABLE shard_touches (
    id bigserial PRIMARY KEY,
    txid bigint NOT NULL,
    table_name text NOT NULL,
    institution_id uuid
)""",
    # The institution's column is the trigger's argument: none for a table without one.
    """CREATE FUNCTION record_shard_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO shard_touches (txid, table_name, institution_id)
    VALUES (
        txid_current(),
        TG_TABLE_NAME,
        CASE WHEN TG_NARGS = 0 THEN NULL ELSE (to_jsonb(
            CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END
        ) ->> TG_ARGV[0])::uuid END
    );
    RETURN NULL;
END $$""",
)

# Every table of the schema, with the column that names its institution (the distribution column
# it would have on Citus) or none.
TABLES = """
SELECT t.table_name, CASE
    WHEN t.table_name = 'institutions' THEN 'id'
    WHEN bool_or(c.column_name = 'institution_id') THEN 'institution_id'
END
FROM information_schema.tables t
JOIN information_schema.columns c USING (table_schema, table_name)
WHERE t.table_schema = 'public' AND t.table_type = 'BASE TABLE'
  AND t.table_name NOT IN ('alembic_version', 'shard_touches')
GROUP BY t.table_name
"""


async def _install_recorder(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for statement in RECORDER:
            await connection.exec_driver_sql(statement)
        for table, column in (await connection.execute(text(TABLES))).all():
            argument = f"'{column}'" if column else ""
            await connection.exec_driver_sql(
                f"CREATE TRIGGER record_shard_touch AFTER INSERT OR UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION record_shard_touch({argument})"
            )


@dataclass
class Recorded:
    engine: AsyncEngine
    url: str


@pytest.fixture
def scratch_url(tmp_path: Path) -> Iterator[str]:
    with scratch_database(tmp_path, "shards") as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture
async def recorded(scratch_url: str) -> AsyncIterator[Recorded]:
    engine = create_engine(scratch_url, pool_size=4)
    await _install_recorder(engine)
    yield Recorded(engine, scratch_url)
    await engine.dispose()


class Steps:
    """Each step's transactions: the rows recorded while it ran."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.bounds: list[tuple[str, int, int]] = []

    async def _last(self) -> int:
        async with self.engine.connect() as connection:
            return (
                await connection.execute(text("SELECT max(id) FROM shard_touches"))
            ).scalar() or 0

    async def run(self, name: str, work) -> None:
        before = await self._last()
        await work()
        self.bounds.append((name, before, await self._last()))

    async def crossings(self) -> set[tuple[str, str]]:
        """Each transaction that wrote rows of two institutions or more: its step, and the tables
        it wrote."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT min(id), string_agg(DISTINCT table_name, ',' ORDER BY table_name) "
                    "FROM shard_touches WHERE institution_id IS NOT NULL GROUP BY txid "
                    "HAVING count(DISTINCT institution_id) > 1"
                )
            )
            return {(self._step_of(first), tables) for first, tables in rows.all()}

    async def unclassified(self) -> set[str]:
        """Tables without an institution column written in an institution's transaction and not
        classified in NOT_DISTRIBUTED."""
        async with self.engine.connect() as connection:
            found = await connection.execute(
                text(
                    "SELECT DISTINCT t.table_name FROM shard_touches t WHERE t.institution_id "
                    "IS NULL AND EXISTS (SELECT 1 FROM shard_touches o WHERE o.txid = t.txid "
                    "AND o.institution_id IS NOT NULL)"
                )
            )
            return set(found.scalars()) - set(NOT_DISTRIBUTED)

    def _step_of(self, row_id: int) -> str:
        return next((name for name, lo, hi in self.bounds if lo < row_id <= hi), "setup")


async def _second_school(engine: AsyncEngine, sim: Simulated, code: str) -> Simulated:
    """Another institution of the same jurisdiction banking with the same bank."""
    school = await make_institution(engine, code, bank_slug=sim.slug)
    opened = await sim.bank.post(
        "/sim/accounts",
        json={"slug": sim.slug, "account_no": school.escrow_account_no, "balance_fen": 0},
    )
    assert opened.status_code in (200, 201), opened.text
    key = await make_key(engine, Role.institution, institution_id=school.id)
    return replace(
        sim,
        institution=auth(key),
        institution_id=school.id,
        escrow_account_no=school.escrow_account_no,
    )


async def _singles_at_once(sim: Simulated, enrollment: dict, keys: list[str]) -> None:
    """Single records sent at once without an Idempotency-Key: the process's group commit writes
    them together (app.lessons.group_commit)."""
    sent = await asyncio.gather(
        *(
            sim.service.post(
                f"/v1/enrollments/{enrollment['id']}/lessons",
                headers=sim.institution,
                json={"lesson_key": key, "occurred_at": utcnow().isoformat(), "count": 1},
            )
            for key in keys
        )
    )
    assert [response.status_code for response in sent] == [201] * len(keys)


async def _lessons(sim: Simulated, enrollment: dict, keys: list[str], confirm: bool) -> None:
    for key in keys:
        # With an Idempotency-Key, as a client that retries sends it: its record is written in
        # the lesson's transaction.
        lesson = await sim.service.post(
            f"/v1/enrollments/{enrollment['id']}/lessons",
            headers={**sim.institution, "Idempotency-Key": f"record-{key}"},
            json={"lesson_key": key, "occurred_at": utcnow().isoformat(), "count": 1},
        )
        assert lesson.status_code == 201, lesson.text
        if confirm:
            confirmed = await sim.service.post(
                f"/v1/lessons/{lesson.json()['id']}/confirm",
                headers=auth(enrollment["parent_key"]),
            )
            assert confirmed.status_code == 200, confirmed.text


async def test_every_ledger_transaction_stays_on_one_institutions_shard(recorded: Recorded):
    steps = Steps(recorded.engine)
    # Sharded by institution, as the deployment says (GROUP_COMMIT_SCOPE): each group commit of
    # lesson records, and each crediting transaction of the inbox's worker, holds one institution.
    async with simulated_bank(
        recorded.engine, recorded.url, "ums", group_commit_scope=GroupCommitScope.institution
    ) as first:
        school = await first.service.get(
            f"/v1/institutions/{first.institution_id}", headers=first.admin
        )
        second = await _second_school(recorded.engine, first, school.json()["jurisdiction_code"])
        schools = [first, second]
        enrolled: dict[int, list[dict]] = {}

        async def enroll_and_pay() -> None:
            for n, sim in enumerate(schools):
                enrolled[n] = [await sim.enroll(10), await sim.enroll(5), await sim.enroll(3)]
                for enrollment in enrolled[n][:2]:  # the third stays unpaid, to expire
                    paid = await sim.pay(enrollment["order_no"], enrollment["amount_fen"])
                    assert paid["deliveries"][0]["status_code"] == 200, paid

        async def lessons() -> None:
            await asyncio.gather(
                *(
                    _singles_at_once(sim, enrolled[n][0], [f"S{n}-{i}" for i in range(3)])
                    for n, sim in enumerate(schools)
                )
            )
            for n, sim in enumerate(schools):
                await _lessons(sim, enrolled[n][0], [f"C{n}-{i}" for i in range(3)], True)
                await _lessons(sim, enrolled[n][0], [f"P{n}-{i}" for i in range(2)], False)
                batch = await sim.service.post(
                    "/v1/lessons/batch",
                    headers=sim.institution,
                    json={
                        "items": [
                            {
                                "enrollment_id": enrolled[n][1]["id"],
                                "lesson_key": f"B{n}-{i}",
                                "occurred_at": utcnow().isoformat(),
                            }
                            for i in range(2)
                        ]
                    },
                )
                assert batch.status_code == 200, batch.text

        async def refunds() -> None:
            for n, sim in enumerate(schools):
                asked = await sim.service.post(
                    f"/v1/enrollments/{enrolled[n][1]['id']}/refunds",
                    headers=auth(enrolled[n][1]["parent_key"]),
                    json={"reason": "moving away"},
                )
                assert asked.status_code == 201, asked.text
                if n == 0:  # the other is left to the auto-approval job
                    approved = await sim.service.post(
                        f"/v1/refunds/{asked.json()['id']}/approve", headers=sim.institution
                    )
                    assert approved.status_code == 200, approved.text

        async def floor() -> None:
            for sim in schools:
                changed = await sim.service.put(
                    f"/v1/regulator/institutions/{sim.institution_id}/floor",
                    headers=sim.regulator,
                    json={"min_balance_floor_fen": 10_000},
                )
                assert changed.status_code == 200, changed.text

        async def statements() -> None:
            today = utcnow().astimezone(SHANGHAI).date().isoformat()
            for sim in schools:
                sent = await sim.bank.post(
                    f"/sim/statements/{sim.slug}/{sim.escrow_account_no}/{today}/send"
                )
                assert sent.status_code == 200, sent.text

        def job(name: str, ahead: timedelta | None = None):
            async def run() -> None:
                await first.run_job(name, utcnow() + ahead if ahead is not None else None)

            return run

        async def settle() -> None:
            await first.settle("success")

        day, month = timedelta(days=1), timedelta(days=40)
        await steps.run("enroll and pay (bank notifications)", enroll_and_pay)
        await steps.run("process_inbox", job("process_inbox"))
        await steps.run("lessons: single, confirmed, batch", lessons)
        await steps.run("regulator sets floors", floor)
        await steps.run("release_payouts", job("release_payouts", day))
        await steps.run("refunds", refunds)
        await steps.run("auto_approve_refunds", job("auto_approve_refunds", month))
        await steps.run("dispatch_instructions", job("dispatch_instructions", month))
        await steps.run("bank settles", settle)
        await steps.run("poll_instructions", job("poll_instructions", month))
        await steps.run("auto_confirm_lessons", job("auto_confirm_lessons", month))
        await steps.run("expire_enrollments", job("expire_enrollments", month))
        await steps.run("statements and reconciliation", statements)
        await steps.run("watch_reconciliation", job("watch_reconciliation", month))
        await steps.run("evaluate_alerts", job("evaluate_alerts", month))
        await steps.run("resume_wind_downs", job("resume_wind_downs", month))
        await steps.run("checkpoint_ledgers", job("checkpoint_ledgers", day))
        await steps.run("purge_idempotency_records", job("purge_idempotency_records", month))

    crossings = await steps.crossings()
    moving_money = {(step, tables) for step, tables in crossings if "ledger_entries" in tables}
    assert not moving_money, f"ledger transactions across institutions: {moving_money}"
    assert crossings <= KNOWN_MULTI_SHARD, f"new multi-shard transactions: {crossings}"
    unclassified = await steps.unclassified()
    assert not unclassified, f"unclassified tables written with an institution's: {unclassified}"


async def test_a_transaction_crediting_two_institutions_is_caught(recorded: Recorded):
    """The recorder's own check: two institutions' payments credited in one transaction (as a
    batch of bank notifications grouped without regard to shards would be) is a crossing."""
    steps = Steps(recorded.engine)
    worlds = [await make_world(recorded.engine), await make_world(recorded.engine)]
    unpaid = [await make_paid_enrollment(recorded.engine, world, paid=False) for world in worlds]

    async def credit_both(session) -> None:
        for world, enrollment in zip(worlds, unpaid, strict=True):
            payment = BankPayment(
                bank_slug="ums",
                bank_reference=f"planted-{enrollment.id}",
                escrow_account_no=world.escrow_account_no,
                order_no=enrollment.order_no,
                amount_fen=enrollment.amount_fen,
                paid_at=utcnow(),
            )
            await credit_payment(session, payment)

    await steps.run("planted", lambda: Database(recorded.engine).run(credit_both))
    crossed = {tables for step, tables in await steps.crossings() if step == "planted"}
    assert len(crossed) == 1 and "ledger_entries" in crossed.pop()


@pytest.mark.parametrize("scope", list(GroupCommitScope))
async def test_group_committed_lessons_stay_on_one_shard_only_when_confined(
    recorded: Recorded, scope: GroupCommitScope
):
    """Two institutions' single records sent at once share a transaction under the `database`
    scope (the recorder sees it cross), and never under `institution`."""
    from app.main import create_app

    worlds = [await make_world(recorded.engine), await make_world(recorded.engine)]
    enrollments = [await paid_enrollment(recorded.engine, world) for world in worlds]
    app = create_app(Settings(database_url=recorded.url, group_commit_scope=scope))
    steps = Steps(recorded.engine)
    async with app.router.lifespan_context(app):
        app.state.lesson_writer.max_wait = 0.05  # company within one test process
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def singles() -> None:
                sent = await asyncio.gather(
                    *(
                        record(client, world, enrollment)
                        for _ in range(4)
                        for world, enrollment in zip(worlds, enrollments, strict=True)
                    )
                )
                assert [response.status_code for response in sent] == [201] * 8

            await steps.run("singles", singles)

    crossed = {tables for step, tables in await steps.crossings() if step == "singles"}
    if scope is GroupCommitScope.institution:
        assert crossed == set()
    else:
        assert crossed == {"enrollments,lessons"}
