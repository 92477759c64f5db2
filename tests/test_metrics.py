"""GET /metrics: requests by route template, ledger entries, and the gauges read from the database
at scrape time, as a Prometheus scraper reads them."""

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from app.alerts.service import raise_alert
from app.banks.inbox import MAX_ATTEMPTS
from app.config import Settings
from app.db.transaction import run_in_transaction
from app.db.unit import Database
from app.kit.clock import utcnow
from app.ledger import service as ledger
from app.models import BankMessage, Instruction, ReconciliationBreak
from app.models.alert import AlertKind
from app.models.bank_message import MessageStatus
from app.models.institution import AlertLevel
from app.models.instruction import InstructionKind, InstructionStatus
from app.models.reconciliation import BreakStatus, BreakType
from tests.factories import make_world
from tests.ledger.conftest import open_books, payment, post

LESSONS_ROUTE = "/v1/enrollments/{enrollment_id}/lessons"
# Rows planted for the lag and age gauges: older than anything another test writes, so that the
# gauge shows exactly theirs. Never picked up by a job: out of retries, or leased for centuries.
LONG_AGO = datetime(1990, 1, 1, tzinfo=UTC)
FAR_AHEAD = datetime(9000, 1, 1, tzinfo=UTC)


async def scrape(client: httpx.AsyncClient, **headers: str) -> dict[tuple[str, frozenset], float]:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_a_request_is_counted_under_its_route_template_and_status(client):
    enrollment_id = uuid.uuid4()
    before = await scrape(client)

    refused = await client.get(f"/v1/enrollments/{enrollment_id}/lessons")
    after = await scrape(client)

    assert refused.status_code == 401
    labels = {"method": "GET", "route": LESSONS_ROUTE}
    assert value(after, "http_requests_total", **labels, status="401") == (
        value(before, "http_requests_total", **labels, status="401") + 1
    )
    assert value(after, "http_request_duration_seconds_count", **labels) == (
        value(before, "http_request_duration_seconds_count", **labels) + 1
    )
    assert all(str(enrollment_id) not in str(key) for key in after)


async def test_a_path_no_route_takes_is_counted_as_unmatched_never_by_its_path(client):
    path = f"/no-such-page/{uuid.uuid4()}"
    before = await scrape(client)

    missing = await client.get(path)
    sent_odd_method = await client.request("BREW", "/healthz")
    after = await scrape(client)

    assert missing.status_code == 404
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(after, "http_requests_total", **unmatched) == (
        value(before, "http_requests_total", **unmatched) + 1
    )
    odd = {"method": "other", "route": "/healthz", "status": str(sent_odd_method.status_code)}
    assert (
        value(after, "http_requests_total", **odd)
        == value(before, "http_requests_total", **odd) + 1
    )
    assert all(path not in str(key) and "BREW" not in str(key) for key in after)


async def test_a_request_that_fails_is_counted_with_the_500_its_caller_got(app, client):
    async def failing() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/test/failing/{n}", failing)
    labels = {"method": "GET", "route": "/test/failing/{n}", "status": "500"}
    before = await scrape(client)

    failed = await client.get("/test/failing/1")
    after = await scrape(client)

    assert failed.status_code == 500
    assert value(after, "http_requests_total", **labels) == (
        value(before, "http_requests_total", **labels) + 1
    )


async def test_ledger_entries_are_counted_once_each_and_replays_not_at_all(client, engine):
    books = await open_books(engine)
    before = await scrape(client)

    await post(engine, books, payment("metrics-1", books, 100))
    drafts = [
        payment("metrics-2", books, 200),
        payment("metrics-1", books, 100),  # the first entry again: a replay writes nothing
        payment("metrics-3", books, 300),
    ]
    await run_in_transaction(engine, lambda c: ledger.post_many(c, books.institution_id, drafts))
    after = await scrape(client)

    assert value(after, "ledger_entries_total") == value(before, "ledger_entries_total") + 3


async def test_open_alerts_and_breaks_are_counted_from_the_database_at_each_scrape(client, engine):
    world = await make_world(engine)
    before = await scrape(client)

    async def open_alert_and_break(session):
        await raise_alert(
            session, world.institution_id, AlertKind.suspense, AlertLevel.red, "m", "metrics test"
        )
        session.add(
            ReconciliationBreak(
                institution_id=world.institution_id,
                id=uuid.uuid4(),
                run_id=uuid.uuid4(),
                type=BreakType.amount_mismatch,
                status=BreakStatus.open,
                detail="metrics test",
                opened_at=utcnow(),
                opened_by="statement",
            )
        )

    await Database(engine).run(open_alert_and_break)
    after = await scrape(client)

    assert value(after, "database_gauges_up") == 1
    assert value(after, "open_alerts", level="RED") == value(before, "open_alerts", level="RED") + 1
    assert value(after, "open_alerts", level="YELLOW") == value(
        before, "open_alerts", level="YELLOW"
    )
    breaks = {"type": "amount_mismatch"}
    assert value(after, "open_reconciliation_breaks", **breaks) == (
        value(before, "open_reconciliation_breaks", **breaks) + 1
    )


async def test_inbox_lag_and_outbox_age_are_the_ages_of_the_oldest_waiting_rows(client, engine):
    world = await make_world(engine)

    async def plant_waiting_rows(session):
        session.add(
            BankMessage(
                id=uuid.uuid4(),
                bank_slug="metrics-test",
                endpoint="notify",
                message_id=uuid.uuid4().hex,
                verification="ok",
                status=MessageStatus.failed,
                content_type="application/json",
                signature_headers={},
                body=b"{}",
                attempts=MAX_ATTEMPTS,
                received_at=LONG_AGO,
            )
        )
        session.add(
            Instruction(
                institution_id=world.institution_id,
                id=uuid.uuid4().hex,
                kind=InstructionKind.payout,
                transfer_id=uuid.uuid4(),
                amount_fen=1,
                payee_account_no="6228000000000000000",
                payee_name="metrics test",
                status=InstructionStatus.pending,
                bank_slug="metrics-test",
                memo="metrics test",
                next_attempt_at=FAR_AHEAD,
                created_at=LONG_AGO,
            )
        )

    await Database(engine).run(plant_waiting_rows)
    scraped_from = utcnow()
    samples = await scrape(client)
    expected = (scraped_from - LONG_AGO).total_seconds()

    assert value(samples, "bank_inbox_lag_seconds") == pytest.approx(expected, abs=60)
    assert value(samples, "bank_outbox_age_seconds") == pytest.approx(expected, abs=60)


# --- METRICS_TOKEN ---


@pytest.fixture
async def guarded_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    from app.main import create_app

    app = create_app(Settings(database_url=database_url, metrics_token=SecretStr("scrape-me")))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield client


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "scrape-me", "Basic scrape-me"])
async def test_with_a_metrics_token_a_scrape_without_it_is_refused(guarded_client, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}

    refused = await guarded_client.get("/metrics", headers=headers)

    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["code"] == "unauthorized"
    assert "http_requests_total" not in refused.text


async def test_with_a_metrics_token_a_scrape_with_it_is_served(guarded_client):
    samples = await scrape(guarded_client, Authorization="Bearer scrape-me")

    assert value(samples, "database_gauges_up") == 1


async def test_without_a_metrics_token_scraping_is_open(client):
    assert value(await scrape(client), "database_gauges_up") == 1


async def test_a_database_that_does_not_answer_leaves_the_process_metrics_served(tmp_path):
    from app.main import create_app

    # A SQLite file that is no database: every query fails.
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database" * 100)
    app = create_app(Settings(database_url=f"sqlite:///{broken}"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        await client.get("/healthz")
        samples = await scrape(client)

    assert value(samples, "database_gauges_up") == 0
    assert ("bank_inbox_lag_seconds", frozenset()) not in samples
    assert value(samples, "http_requests_total", method="GET", route="/healthz", status="200") >= 1


# --- several worker processes ---

WORKER = textwrap.dedent(
    """
    from app.kit.metrics import HTTP_REQUESTS, LEDGER_ENTRIES
    LEDGER_ENTRIES.inc(3)
    HTTP_REQUESTS.labels("GET", "/healthz", "200").inc()
    """
)
SCRAPER = textwrap.dedent(
    """
    from app.metrics.database import DatabaseGauges
    from app.metrics.exposition import exposition
    print(exposition(DatabaseGauges(read=False)).decode())
    """
)


def _python(code: str, multiprocess_dir: Path) -> str:
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiprocess_dir)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.mark.database_free
def test_in_multiprocess_mode_a_scrape_adds_up_every_workers_counts(tmp_path):
    for _ in range(2):  # two workers, each gone before the scrape, as after a restart
        _python(WORKER, tmp_path)

    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(_python(SCRAPER, tmp_path))
        for sample in family.samples
    }

    assert value(samples, "ledger_entries_total") == 6
    assert value(samples, "http_requests_total", method="GET", route="/healthz", status="200") == 2
    assert value(samples, "database_gauges_up") == 0
