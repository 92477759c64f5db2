"""READ_DATABASE_URL: the regulator's reads come from the replica, every write from the primary.

A second database stands in for the replica (a second PostgreSQL database on the same server, or a
second SQLite file). It holds institutions the primary does not, so each answer shows which
database it came from."""

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import migrate
from app.db.engine import create_engine
from app.db.replica import create_read_engine
from app.db.transaction import sqlstate
from app.db.unit import Database
from app.models import Institution, Jurisdiction
from tests.factories import World, auth, make_institution, make_world
from tests.scratch import scratch_database

READ_ONLY_TRANSACTION = "25006"  # PostgreSQL: cannot execute ... in a read-only transaction


@pytest.fixture
def replica_url(tmp_path: Path) -> Iterator[str]:
    with scratch_database(tmp_path, "replica") as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture
async def replica_app(database_url: str, replica_url: str) -> AsyncIterator[FastAPI]:
    from app.main import create_app  # late, as in conftest: app.main reads settings on import

    application = create_app(Settings(database_url=database_url, read_database_url=replica_url))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def replica_client(replica_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=replica_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@dataclass
class Split:
    """A jurisdiction with one institution on the primary and two others on the replica only."""

    world: World  # its institution, keys and jurisdiction: on the primary
    on_replica: list[Institution]


async def _split(engine: AsyncEngine, replica_url: str) -> Split:
    world = await make_world(engine)
    jurisdiction = await Database(engine).run(
        lambda session: session.get_one(Jurisdiction, world.jurisdiction_code)
    )
    # Seeded through a writable engine of its own: the service's engine on it refuses writes.
    replica = create_engine(replica_url)
    try:
        await Database(replica).run(lambda session: session.merge(jurisdiction))
        on_replica = [await make_institution(replica, world.jurisdiction_code) for _ in range(2)]
    finally:
        await replica.dispose()
    return Split(world, on_replica)


def _ids(items: list[dict]) -> set[str]:
    return {item.get("id") or item["institution_id"] for item in items}


async def test_the_regulators_reads_come_from_the_replica(engine, replica_url, replica_client):
    split = await _split(engine, replica_url)
    regulator = auth(split.world.regulator_key)
    replica_ids = {str(institution.id) for institution in split.on_replica}
    primary_id = str(split.world.institution_id)

    listed = await replica_client.get("/v1/regulator/institutions", headers=regulator)
    assert listed.status_code == 200, listed.text
    assert _ids(listed.json()["items"]) == replica_ids

    summary = await replica_client.get("/v1/regulator/summary", headers=regulator)
    assert summary.json()["institutions"] == 2

    some = split.on_replica[0].id
    views = {
        f"/v1/regulator/institutions/{some}/balance": 200,
        f"/v1/regulator/institutions/{primary_id}/balance": 404,
        f"/v1/regulator/institutions/{some}/level-changes": 200,
        f"/v1/regulator/institutions/{some}/ledger/checkpoints": 200,
        f"/v1/regulator/alerts?institution_id={some}": 200,
        f"/v1/regulator/audit?institution_id={some}": 200,
        f"/v1/regulator/audit/verify?institution_id={some}": 200,
    }
    for path, status in views.items():
        response = await replica_client.get(path, headers=regulator)
        assert response.status_code == status, (path, response.text)

    verified = await replica_client.get("/v1/regulator/ledger/verify", headers=regulator)
    assert verified.status_code == 200, verified.text
    assert _ids(verified.json()["items"]) == replica_ids
    assert all(item["intact"] for item in verified.json()["items"])

    for what in ("balances", "alerts", "breaks", "audit"):
        exported = await replica_client.get(f"/v1/regulator/exports/{what}.csv", headers=regulator)
        assert exported.status_code == 200, (what, exported.text)
        if what == "balances":
            text_ = exported.content.decode("utf-8-sig")
            assert all(institution.name in text_ for institution in split.on_replica)
            assert primary_id not in text_


async def test_writes_and_the_institutions_own_view_stay_on_the_primary(
    engine, replica_url, replica_client
):
    split = await _split(engine, replica_url)
    primary_id = split.world.institution_id
    own = await replica_client.get(
        f"/v1/institutions/{primary_id}/balance", headers=auth(split.world.institution_key)
    )
    assert own.status_code == 200, own.text

    floor = {"min_balance_floor_fen": 123_456}
    regulator = auth(split.world.regulator_key)
    changed = await replica_client.put(
        f"/v1/regulator/institutions/{primary_id}/floor", json=floor, headers=regulator
    )
    assert changed.status_code == 200, changed.text
    stored = await Database(engine).run(
        lambda session: session.get_one(Institution, primary_id, populate_existing=True)
    )
    assert stored.min_balance_floor_fen == 123_456
    # The replica's institutions are unknown where writes go.
    replica_only = split.on_replica[0].id
    missing = await replica_client.put(
        f"/v1/regulator/institutions/{replica_only}/floor", json=floor, headers=regulator
    )
    assert missing.status_code == 404


@pytest.mark.postgres_only
async def test_the_read_engine_refuses_writes(replica_app: FastAPI):
    """Even pointed at a primary by mistake, the read engine writes nothing."""
    read_engine: AsyncEngine = replica_app.state.read_engine
    assert read_engine is not replica_app.state.engine
    with pytest.raises(DBAPIError) as refused:
        async with read_engine.begin() as connection:
            await connection.execute(text("UPDATE institutions SET name = name"))
    assert sqlstate(refused.value) == READ_ONLY_TRANSACTION


def test_unset_the_regulator_reads_the_primary(tmp_path: Path) -> None:
    primary = create_engine(f"sqlite:///{tmp_path / 'primary.db'}")
    assert create_read_engine(Settings(read_database_url=None), primary) is primary
