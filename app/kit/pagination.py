"""Keyset pagination for every list (API.md: `limit`, an opaque `cursor`, `{items, next_cursor}`).

A list is ordered by creation time then id, and a page's cursor is the position of its last row.
Rows added while a client pages through never make it skip or repeat a row, and a page costs one
index range scan however deep it is, which OFFSET would not.
"""

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.kit.clock import as_utc
from app.kit.errors import Unprocessable

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

T = TypeVar("T")
Row = TypeVar("Row")


class InvalidCursor(Unprocessable):
    code = "invalid_cursor"
    title = "Invalid cursor"


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    cursor: str | None


async def _page_request(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page, at most {MAX_LIMIT}.")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=200, description="The `next_cursor` of the previous page."),
    ] = None,
) -> PageRequest:
    return PageRequest(limit=limit, cursor=cursor)


# An endpoint parameter: `page: PageParams` adds `limit` and `cursor` to its query string.
PageParams = Annotated[PageRequest, Depends(_page_request)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


def _encode(created_at: datetime, row_id: UUID) -> str:
    position = [as_utc(created_at).isoformat(), str(row_id)]
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def _decode(cursor: str) -> tuple[datetime, UUID]:
    try:
        created_at, row_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return as_utc(datetime.fromisoformat(created_at)), UUID(row_id)
    except (binascii.Error, ValueError, TypeError, AttributeError, OverflowError):
        raise InvalidCursor("the cursor is not one this list gave out") from None


async def paginate(
    session: AsyncSession,
    query: Select[Row],
    page: PageRequest,
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[Any],
) -> tuple[Sequence[Row], str | None]:
    """One page of `query`'s rows, oldest first, and the cursor of the next page (None at the end).

    `created_at` and `row_id` are the entity's columns the list is ordered by; (created_at, id) is
    unique, so the order is total."""
    if page.cursor is not None:
        after_time, after_id = _decode(page.cursor)
        query = query.where(
            or_(created_at > after_time, and_(created_at == after_time, row_id > after_id))
        )
    query = query.order_by(created_at, row_id).limit(page.limit + 1)
    rows = (await session.scalars(query)).all()
    if len(rows) <= page.limit:
        return rows, None
    last = rows[page.limit - 1]
    return rows[: page.limit], _encode(getattr(last, created_at.key), getattr(last, row_id.key))
