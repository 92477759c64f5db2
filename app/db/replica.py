"""The engine of the regulator's reads: a streaming replica when READ_DATABASE_URL names one.

A hot standby refuses writes by itself; the sessions opened here refuse them too
(`default_transaction_read_only`, set when the connection opens: no round trip of its own), so a
read endpoint that started writing fails in the tests against any PostgreSQL, not only in
production against the standby."""

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db.engine import create_engine

READ_ONLY_SESSIONS = {"server_settings": {"default_transaction_read_only": "on"}}


def create_read_engine(settings: Settings, primary: AsyncEngine) -> AsyncEngine:
    """An engine on READ_DATABASE_URL, or `primary` itself when it is unset."""
    if settings.read_database_url is None:
        return primary
    url = settings.read_database_url
    if make_url(url).get_backend_name() == "sqlite":
        # No replica for SQLite: a second file stands in for one in tests. BEGIN IMMEDIATE, which
        # the engine issues, is itself a write to SQLite's query_only mode, so no guard here.
        return create_engine(url)
    return create_engine(url, pool_size=settings.db_pool_size, connect_args=READ_ONLY_SESSIONS)
