"""The migrations build exactly the models' schema on a fresh database, and come down and up again."""

import asyncio
import uuid

from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from app.db import migrate
from app.db.engine import create_engine
from tests.conftest import ON_POSTGRES, TEST_DATABASE_URL


async def _admin(statement: str) -> None:
    url = make_url(TEST_DATABASE_URL).set(database="postgres")
    engine = create_engine(url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(statement))
    await engine.dispose()


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    return names


def test_fresh_database_upgrade_check_downgrade_upgrade(tmp_path):
    if ON_POSTGRES:
        name = f"migrations_{uuid.uuid4().hex[:12]}"
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
        url = make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    try:
        config = migrate.alembic_config(url)
        command.upgrade(config, "head")
        command.check(config)  # raises when models and migrations disagree
        assert {"ledger_entries", "ledger_postings", "idempotency_records"} <= asyncio.run(
            _tables(url)
        )
        command.downgrade(config, "base")
        assert asyncio.run(_tables(url)) <= {"alembic_version"}
        command.upgrade(config, "head")
    finally:
        if ON_POSTGRES:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
