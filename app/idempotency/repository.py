"""The idempotency records, in SQLAlchemy Core. Each function is its own short transaction: a claim
must be visible to every other request the moment it is made, not when the handler finishes."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, Table, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db.transaction import run_in_transaction
from app.kit.clock import as_utc
from app.models.idempotency_record import IdempotencyRecord, IdempotencyStatus

# Declared as a FromClause by the ORM; it is the table itself.
records = cast(Table, IdempotencyRecord.__table__)

# Each failed attempt means another request claimed, released or replaced the key in between;
# a few in a row would take a storm of requests on one key, so give up then rather than spin.
MAX_CLAIM_ATTEMPTS = 5


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class HeldKey:
    """The key as an earlier request holds it; `response` is None while that request runs."""

    request_hash: str
    response: StoredResponse | None
    expires_at: datetime


def _is_key(caller: str, key: str) -> ColumnElement[bool]:
    return and_(records.c.caller == caller, records.c.key == key)


async def claim(
    engine: AsyncEngine, *, caller: str, key: str, request_hash: str, now: datetime, ttl: timedelta
) -> HeldKey | None:
    """Claim `key` for a new request: None when it is ours to run, else the live record holding it.

    The claim is the INSERT of an in-progress record, committed at once; the primary key lets only
    one of any number of concurrent inserts through. A loser reads the winner's record instead. An
    expired record is replaced by a conditional UPDATE, which again only one request can win.
    Records in progress expire too, so that a key whose request died with its process is not held
    for ever; the TTL, in hours, is meant to be far longer than any request runs."""
    claimed = {
        "request_hash": request_hash,
        "status": IdempotencyStatus.in_progress,
        "response_status": None,
        "response_headers": None,
        "response_body": None,
        "created_at": now,
        "expires_at": now + ttl,
    }

    async def insert_claim(connection: AsyncConnection) -> None:
        await connection.execute(insert(records).values(caller=caller, key=key, **claimed))

    async def replace_expired(connection: AsyncConnection) -> bool:
        result = await connection.execute(
            update(records).where(_is_key(caller, key), records.c.expires_at <= now).values(claimed)
        )
        return result.rowcount == 1

    for _ in range(MAX_CLAIM_ATTEMPTS):
        try:
            await run_in_transaction(engine, insert_claim)
            return None
        except IntegrityError:
            pass  # the key is taken: look at who holds it
        held = await _find(engine, caller, key)
        if held is None:
            continue  # released (its request failed) since our insert: try again
        if held.expires_at > now:
            return held
        if await run_in_transaction(engine, replace_expired):
            return None
    raise RuntimeError(f"could not claim idempotency key after {MAX_CLAIM_ATTEMPTS} attempts")


async def _find(engine: AsyncEngine, caller: str, key: str) -> HeldKey | None:
    async def read(connection: AsyncConnection) -> HeldKey | None:
        row = (await connection.execute(select(records).where(_is_key(caller, key)))).first()
        if row is None:
            return None
        response = None
        if row.status == IdempotencyStatus.completed:
            response = StoredResponse(
                row.response_status, row.response_headers, bytes(row.response_body)
            )
        return HeldKey(row.request_hash, response, as_utc(row.expires_at))

    return await run_in_transaction(engine, read)


async def complete(engine: AsyncEngine, *, caller: str, key: str, response: StoredResponse) -> None:
    """Store the response of the request that claimed the key, for replay."""

    async def store(connection: AsyncConnection) -> None:
        await connection.execute(
            update(records)
            .where(_is_key(caller, key), records.c.status == IdempotencyStatus.in_progress)
            .values(
                status=IdempotencyStatus.completed,
                response_status=response.status,
                response_headers=response.headers,
                response_body=response.body,
            )
        )

    await run_in_transaction(engine, store)


async def release(engine: AsyncEngine, *, caller: str, key: str) -> None:
    """Give the key back, so that the client may retry a request that failed."""

    async def remove(connection: AsyncConnection) -> None:
        await connection.execute(
            delete(records).where(
                _is_key(caller, key), records.c.status == IdempotencyStatus.in_progress
            )
        )

    await run_in_transaction(engine, remove)
