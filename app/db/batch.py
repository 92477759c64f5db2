"""Reading many rows by a list of keys at once."""

from collections.abc import Collection, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Uuid, and_, any_, bindparam, func, select, tuple_
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


def pairs_in(columns: tuple[Any, Any], name: str, dialect: str) -> ColumnElement[bool]:
    """`(a, b) IN :name` for a statement built once and run with lists of pairs of any length
    (`pairs_bound` binds them): on PostgreSQL two parallel array parameters unnested together, one
    prepared statement for every length; on SQLite an expanding IN of row values."""
    first, second = columns
    if dialect == "postgresql":
        wanted = (
            func.unnest(
                bindparam(f"{name}_first", type_=ARRAY(first.type)),
                bindparam(f"{name}_second", type_=ARRAY(second.type)),
            )
            .table_valued("first", "second")
            .render_derived()
        )
        return tuple_(first, second).in_(select(wanted.c.first, wanted.c.second))
    return tuple_(first, second).in_(bindparam(name, expanding=True))


def pairs_bound(name: str, pairs: Collection[tuple[Any, Any]], dialect: str) -> dict[str, Any]:
    """The parameters of `pairs_in(..., name, dialect)` for `pairs`."""
    if dialect == "postgresql":
        return {f"{name}_first": [a for a, _ in pairs], f"{name}_second": [b for _, b in pairs]}
    return {name: list(pairs)}
