"""The idempotency records, in SQLAlchemy Core, on the connection of the request they belong to.

A record is written only by the request that ran, in its own transaction and just before its COMMIT
(or, for a refusal, which changed nothing, in a short transaction of its own). So a record exists
exactly when the request's outcome is final; there is no "in progress" row that a dead process could
leave behind. The response is stored sealed under SECRET_KEY: bodies may hold a parent's key or a new
API key, and no secret rests in plain text.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.kit.clock import as_utc
from app.kit.sealing import seal, unseal
from app.models.idempotency_record import IdempotencyRecord

# Declared as a FromClause by the ORM; it is the table itself.
records = cast(Table, IdempotencyRecord.__table__)

SEALED_RESPONSE = "idempotent response"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Record:
    request_hash: str
    response: StoredResponse


def _is_key(caller: str, key: str) -> ColumnElement[bool]:
    return and_(records.c.caller == caller, records.c.key == key)


def _sealed(secret_key: str, response: StoredResponse) -> bytes:
    document = {"status": response.status, "headers": response.headers}
    plaintext = json.dumps(document).encode() + b"\n" + response.body
    return seal(secret_key, SEALED_RESPONSE, plaintext)


def _unsealed(secret_key: str, sealed: bytes) -> StoredResponse:
    document, _, body = unseal(secret_key, SEALED_RESPONSE, sealed).partition(b"\n")
    meta: dict[str, Any] = json.loads(document)
    return StoredResponse(meta["status"], meta["headers"], body)


async def find(
    connection: AsyncConnection, secret_key: str, *, caller: str, key: str, now: datetime
) -> Record | None:
    """The live record of `key`, if a request with it has finished."""
    row = (
        await connection.execute(
            select(records.c.request_hash, records.c.response, records.c.expires_at).where(
                _is_key(caller, key)
            )
        )
    ).first()
    if row is None or as_utc(row.expires_at) <= now:
        return None
    return Record(row.request_hash, _unsealed(secret_key, bytes(row.response)))


async def record(
    connection: AsyncConnection,
    secret_key: str,
    *,
    caller: str,
    key: str,
    request_hash: str,
    response: StoredResponse,
    now: datetime,
    ttl: timedelta,
) -> bool:
    """Write the response of the request that ran with `key`; False when another request with the
    key finished first (its record is live), in which case this request must not commit.

    An expired record is replaced in the same statement. On PostgreSQL a concurrent writer of the
    same key waits on the primary key until the first commits or rolls back, so two can never both
    succeed."""
    values = {
        "caller": caller,
        "key": key,
        "request_hash": request_hash,
        "response": _sealed(secret_key, response),
        "created_at": now,
        "expires_at": now + ttl,
    }
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(records).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=[records.c.caller, records.c.key],
        set_={name: statement.excluded[name] for name in values if name not in ("caller", "key")},
        where=records.c.expires_at <= now,
    )
    result = await connection.execute(statement)
    return result.rowcount == 1


_LOCK_AND_FIND = text(
    "SELECT pg_try_advisory_xact_lock(hashtextextended(:name, 0)) AS locked, "
    "r.request_hash, r.response, r.expires_at "
    "FROM (SELECT 1) AS one LEFT JOIN idempotency_records AS r "
    "ON r.caller = :caller AND r.key = :key"
)


async def lock_and_find(
    connection: AsyncConnection, secret_key: str, *, caller: str, key: str, now: datetime
) -> tuple[bool, Record | None]:
    """PostgreSQL, in one round trip: take the key's transaction-scoped advisory lock, without
    waiting, and read its live record (`find`). The lock is the key's lease while its request runs:
    released at COMMIT or ROLLBACK, and by the server the moment the connection of a process that
    died goes away, so a key is never held by a dead request.

    The record is read in the statement's snapshot, taken just before the lock: a request that
    finished in between is not seen, runs again, and then loses to the finished one's record at
    `record` (its primary key), rolling back; the caller gets the first response all the same."""
    row = (
        await connection.execute(
            _LOCK_AND_FIND, {"name": f"idempotency\n{caller}\n{key}", "caller": caller, "key": key}
        )
    ).one()
    if not row.locked:
        return False, None
    if row.request_hash is None or as_utc(row.expires_at) <= now:
        return True, None
    return True, Record(row.request_hash, _unsealed(secret_key, bytes(row.response)))


async def purge_expired(connection: AsyncConnection, now: datetime) -> int:
    result = await connection.execute(delete(records).where(records.c.expires_at <= now))
    return result.rowcount
