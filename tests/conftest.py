"""Test database: DATABASE_URL when given (CI passes a fresh PostgreSQL database), else a new SQLite
file. The schema is built by the migrations, never by create_all. Tests never clean up: each one
works in institutions of its own, which is also how the ledger isolates them in production."""

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import migrate
from app.db.engine import create_engine
from app.kit import workdays
from tests.live import serve

_TMP = Path(tempfile.mkdtemp(prefix="prepaid-guard-tests-"))
TEST_DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{_TMP / 'test.db'}"
os.environ["DATABASE_URL"] = TEST_DATABASE_URL
os.environ.setdefault("ENVIRONMENT", "test")
# The PostgreSQL pass shares its server with other clients: every app the tests start keeps a
# small pool, so that the whole suite stays well under 50 connections (the server's default is 100).
os.environ.setdefault("DB_POOL_SIZE", "3")
# A bank's payment is credited before the bank's reply, so that a test can look at the enrollment
# as soon as the notification is answered. Production credits it right after the reply
# (background); the inbox's own tests run both ways (tests/banks/test_inbox.py).
os.environ.setdefault("INBOX_APPLY", "inline")

ON_POSTGRES = TEST_DATABASE_URL.startswith(("postgresql", "postgres"))


# Tests record lessons and refunds "now", and their deadlines run up to a few weeks ahead: near the
# end of the last year chinesecalendar covers, they need the next. The tests count a year no
# calendar covers as the demo does (weekends and New Year's Day off); tests/kit/test_workdays.py
# tests the refusal itself on a year far ahead.
workdays.stand_in_for_unknown_years(date.today())


@pytest.fixture
def calendars() -> Iterator[None]:
    """Calendar years a test publishes are forgotten after it."""
    before = dict(workdays._published)
    yield
    workdays._published.clear()
    workdays._published.update(before)


def pytest_report_header(config: pytest.Config) -> str:
    return f"database: {'PostgreSQL' if ON_POSTGRES else 'SQLite'} ({TEST_DATABASE_URL})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """PostgreSQL-only tests (many concurrent writers, row locks) run in the PostgreSQL pass of CI;
    on SQLite they are deselected, not skipped, so a skip never hides a missing feature. Slow
    tests that touch no database at all run in the SQLite pass alone: the PostgreSQL pass would
    repeat them to the byte."""
    unwanted = "database_free" if ON_POSTGRES else "postgres_only"
    kept = [item for item in items if item.get_closest_marker(unwanted) is None]
    dropped = [item for item in items if item.get_closest_marker(unwanted) is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def database_url() -> str:
    migrate.upgrade(TEST_DATABASE_URL)
    return TEST_DATABASE_URL


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=8)
    yield engine
    await engine.dispose()


# --- HTTP fixtures ---


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    """A new application on the test database, inside its lifespan (ASGITransport runs none)."""
    # Imported late: app.main builds its module-level app, and caches the settings, on import, which
    # must come after DATABASE_URL is set above.
    from app.main import create_app

    application = create_app(Settings(database_url=database_url))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture
async def live_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the application served by uvicorn on a loopback port: real HTTP, for tests of
    requests racing each other."""
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
        yield client
