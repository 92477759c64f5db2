"""Engine and sessions. Operators give plain URLs; choosing the async driver is our business."""

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

ASYNC_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}


class UnsupportedDatabase(ValueError):
    pass


def async_url(database_url: str) -> URL:
    """`postgresql://u@h:5432/db` -> asyncpg, `sqlite:///path` -> aiosqlite; drivers given are kept
    only when they are the async ones we support."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend not in ASYNC_DRIVERS:
        raise UnsupportedDatabase(
            f"unsupported database {backend!r}: use postgresql:// or sqlite:///"
        )
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            # Every pooled connection would get its own empty database.
            raise UnsupportedDatabase(
                "an in-memory SQLite database is not supported: give a file path"
            )
        # Said here, in words: the driver's own "unable to open database file" names no cause.
        if not (directory := Path(url.database).parent).is_dir():
            raise UnsupportedDatabase(f"no directory {directory} for the SQLite file")
    return url.set(drivername=ASYNC_DRIVERS[backend])


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(database_url: str, *, pool_size: int = 20, **kwargs: Any) -> AsyncEngine:
    url = async_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, poolclass=NullPool, **kwargs)
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, **kwargs
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    """SQLite serialises writers on the whole file. Taking the write lock at BEGIN (IMMEDIATE) rather
    than at the first write avoids the lock-upgrade deadlock two readers-turned-writers would hit, and
    busy_timeout makes a second writer wait instead of failing."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
