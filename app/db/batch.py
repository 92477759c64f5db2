"""Reading many rows by a list of keys at once."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Uuid, and_, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection


def among(connection: AsyncConnection, column: Any, ids: Sequence[UUID]) -> ColumnElement[bool]:
    """`column IN ids`, for a page of up to hundreds of institutions.

    Bounded by the least and greatest id too: a page in id order is a narrow slice of every table
    keyed by institution first, and the bounds let the planner read that slice of the index where
    a long list alone makes it scan the whole table once the list is a few percent of it. On
    PostgreSQL the ids go as one array parameter (`= ANY(:ids)`): an IN list of 500 is 500 bound
    parameters, each rendered with its cast, which costs more than the query."""
    if connection.dialect.name == "postgresql":
        listed = column == any_(bindparam(None, list(ids), type_=ARRAY(Uuid)))
    else:
        listed = column.in_(ids)
    return and_(column >= min(ids), column <= max(ids), listed)


def in_list(column: Any, name: str, dialect: str) -> ColumnElement[bool]:
    """`column IN :name` for a statement built once and run with lists of any length: on
    PostgreSQL one array parameter (`= ANY(:name)`), so one prepared statement serves every
    length where an expanding IN would be a new statement text, prepared anew, for each; on SQLite
    an expanding IN."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))
