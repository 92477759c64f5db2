"""Statements whose spelling differs between PostgreSQL and SQLite."""

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert_for(connection: AsyncConnection, table: Table | Any) -> Any:
    """An INSERT that offers ON CONFLICT on both databases (the two dialects spell it alike)."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)
