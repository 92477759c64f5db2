"""The migrations build exactly the models' schema on a fresh database, and come down and up again."""

import asyncio

from alembic import command
from sqlalchemy import inspect

from app.db import migrate
from app.db.engine import create_engine
from tests.scratch import scratch_database


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    return names


def test_fresh_database_upgrade_check_downgrade_upgrade(tmp_path):
    with scratch_database(tmp_path, "migrations") as url:
        config = migrate.alembic_config(url)
        command.upgrade(config, "head")
        command.check(config)  # raises when models and migrations disagree
        assert {"ledger_entries", "ledger_postings", "idempotency_records"} <= asyncio.run(
            _tables(url)
        )
        command.downgrade(config, "base")
        assert asyncio.run(_tables(url)) <= {"alembic_version"}
        command.upgrade(config, "head")
