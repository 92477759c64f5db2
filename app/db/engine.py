"""Engine and sessions. Operators give plain URLs; choosing the async driver is our business."""

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
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


READ_ONLY_OPTION = "prepaid_guard_read_only"


def read_only_options(engine: AsyncEngine) -> dict[str, Any]:
    """Execution options of a connection that only reads (`Database.read`): autocommit on
    PostgreSQL, a reader's deferred BEGIN on SQLite (see `_configure_sqlite`)."""
    if is_sqlite(engine):
        return {READ_ONLY_OPTION: True}
    return {"isolation_level": "AUTOCOMMIT"}


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(database_url: str, *, pool_size: int = 20, **kwargs: Any) -> AsyncEngine:
    url = async_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, poolclass=NullPool, **kwargs)
        _configure_sqlite(engine)
        return engine
    engine = create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=RECYCLE_SECONDS, **kwargs
    )
    _drop_closed_on_checkout(engine)
    return engine


# A pooled connection older than this is replaced at its next checkout, before a server's or a
# firewall's idle timeout can cut it under a request.
RECYCLE_SECONDS = 1800


def _drop_closed_on_checkout(engine: AsyncEngine) -> None:
    """No pre-ping round trip on every checkout (it cost three statements a request): asyncpg
    notices a connection the server closed (a restart, a terminated backend) as soon as the socket
    reports it, so checking its local state is enough. A closed one is discarded and the pool hands
    out another (SQLAlchemy retries a checkout that raises `DisconnectionError`). A connection cut
    silently fails its first statement instead: the pool is invalidated and the request answers
    503, and a retry gets a fresh connection."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise DisconnectionError("the server closed this pooled connection")
        record.info[_STATEMENTS_DONE] = False

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _on_statement_done(connection: Any, *_: Any) -> None:
        connection.info[_STATEMENTS_DONE] = True


_STATEMENTS_DONE = "statements_done"


class StatementProgress:
    """Whether a statement has succeeded on a connection since it was checked out, readable even
    after the connection broke (PostgreSQL; on SQLite, always yes: its file is never "restarted"
    under a pooled connection)."""

    def __init__(self, connection: AsyncConnection) -> None:
        # The pool keeps this dict per connection; held here, it outlives an invalidation.
        synced = connection.sync_connection
        assert synced is not None, "a connection that has begun"
        self._info = synced.info

    @property
    def any(self) -> bool:
        return bool(self._info.get(_STATEMENTS_DONE, True))


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
        # A reader's transaction takes no lock until it reads, and none that blocks writers.
        reader = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if reader else "BEGIN IMMEDIATE")
