"""A database of a test's own beside the test database: a new PostgreSQL database on the same
server (dropped afterwards), or a new SQLite file. For tests that change a schema, stand in for a
second server (a replica) or install instruments the other tests must not run under."""

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.db.engine import create_engine
from tests.conftest import ON_POSTGRES, TEST_DATABASE_URL


async def _on_server(statement: str) -> None:
    url = make_url(TEST_DATABASE_URL).set(database="postgres")
    engine = create_engine(url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(statement))
    await engine.dispose()


@contextmanager
def scratch_database(directory: Path, prefix: str) -> Iterator[str]:
    """The URL of a new, empty database (no schema). Call it with no event loop running."""
    if not ON_POSTGRES:
        yield f"sqlite:///{directory / f'{prefix}.db'}"
        return
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_on_server(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
