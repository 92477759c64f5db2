"""The audit trail: who did what, when, and from which address (issue 11 item 5).

INTERFACE (shared by every part of issue 11): `record` is called inside the unit of work of the
action it records, so the action and its record commit together or not at all.

Two halves, listed together by `page`:
- actions (`audit_records`): one row per regulator or operator action, appended by `record` to
  its chain (the institution's, or the platform's), each hash-chained to the one before;
- money movements: every journal entry carries the actor and address of the request, bank
  message or job that posted it (`ledger_entries.actor_role`, `actor_id`, `address`, chained by
  the journal's own hash), so the money path pays no extra statement for its trail.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import repository as repo
from app.audit.chain import GENESIS_HASH, PLATFORM_CHAIN, normalised, record_hash
from app.audit.context import Actor, client_address
from app.auth.principal import Principal
from app.kit.clock import as_utc, utcnow
from app.kit.pagination import InvalidCursor, PageRequest
from app.models.api_key import Role


def actor_of(actor: Principal | str) -> Actor:
    """A principal as the trail names it (its role and key id), or a name such as `job:...`."""
    if isinstance(actor, str):
        return Actor.parse(actor)
    return Actor(str(actor.role), str(actor.key_id) if actor.key_id else "environment")


async def record(
    session: AsyncSession,
    action: str,
    *,
    actor: Principal | str,
    institution_id: UUID | None = None,
    object_type: str | None = None,
    object_id: UUID | str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record `action` (e.g. "institution.freeze", "floor.set", "wind_down.start") by `actor` (the
    caller's principal, or the name of a job or bank such as "job:evaluate_alerts"), about the
    institution and object named, with `details` (JSON-able: a reason, amounts in fen). The address
    is the current request's (`app.audit.context.client_address`).

    Three statements: the chain's head locked (created if new), the record, the head moved."""
    who = actor_of(actor)
    jurisdiction_code = (
        actor.jurisdiction_code
        if isinstance(actor, Principal) and actor.role is Role.regulator
        else None
    )
    details = normalised(details)
    if jurisdiction_code is None and details is not None:
        named = details.get("jurisdiction_code")
        jurisdiction_code = named if isinstance(named, str) else None
    chain = institution_id or PLATFORM_CHAIN
    last_seq, last_hash = await repo.lock_head(session, chain)
    row: dict[str, Any] = {
        "institution_id": chain,
        "seq": last_seq + 1,
        "at": utcnow(),
        "jurisdiction_code": jurisdiction_code,
        "actor_role": who.role,
        "actor_id": who.id,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id) if object_id is not None else None,
        "address": client_address.get(),
        "details": details,
        "prev_hash": last_hash,
    }
    row["hash"] = record_hash(last_hash, **{k: v for k, v in row.items() if k != "prev_hash"})
    await repo.append(session, row)


# --- verification ---


@dataclass(frozen=True, slots=True)
class AuditVerification:
    intact: bool
    chains_checked: int
    records_checked: int
    institution_id: UUID | None = None  # of the first broken chain (None: the platform's)
    first_bad_seq: int | None = None
    verified_through_seq: int | None = None  # of the broken chain: intact up to this record
    problem: str | None = None


def _record_problem(row: Any, expected_seq: int, expected_prev: str) -> str | None:
    if row.seq != expected_seq:
        return f"record {expected_seq} is missing"
    fields = {
        name: getattr(row, name)
        for name in (
            "institution_id",
            "seq",
            "at",
            "jurisdiction_code",
            "actor_role",
            "actor_id",
            "action",
            "object_type",
            "object_id",
            "address",
            "details",
        )
    }
    if row.prev_hash != expected_prev:
        return f"record {row.seq} is not linked to the record before it"
    if row.hash != record_hash(expected_prev, **fields):
        return f"record {row.seq} was altered: its content no longer matches its hash"
    return None


async def verify(session: AsyncSession, chains: Select[Any] | list[UUID]) -> AuditVerification:
    """Walk each chain named from its first record, recomputing every hash and link, and compare
    its head with its last record (a removed tail leaves the head beyond it). Reports the first
    broken chain, naming the first bad record and how far the chain is intact."""
    # Heads first: a record appended after this read is beyond its head and left for next time, so
    # writes going on meanwhile are never taken for tampering (a head moves in the transaction
    # that appends its record, so every record up to a head seen here exists).
    found_heads = await repo.chain_heads(session, chains)
    walked: set[UUID] = set()
    chains_checked = records_checked = 0
    chain: UUID | None = None
    expected_seq, expected_prev = 1, GENESIS_HASH

    def broken(problem: str, bad_seq: int | None) -> AuditVerification:
        return AuditVerification(
            intact=False,
            chains_checked=chains_checked,
            records_checked=records_checked,
            institution_id=None if chain == PLATFORM_CHAIN else chain,
            first_bad_seq=bad_seq,
            verified_through_seq=expected_seq - 1,
            problem=problem,
        )

    def tail_problem() -> str | None:
        head = found_heads[chain]  # type: ignore[index]
        if head.last_seq > expected_seq - 1:
            return f"records {expected_seq} to {head.last_seq} are missing from the chain's end"
        if head.last_hash != expected_prev:
            return "the chain's head is not on its last record"
        return None

    async for row in repo.chain_rows(session, chains):
        head = found_heads.get(row.institution_id)
        if head is None or row.seq > head.last_seq:
            continue
        if row.institution_id != chain:
            if chain is not None and (problem := tail_problem()) is not None:
                return broken(problem, expected_seq)
            chain, chains_checked = row.institution_id, chains_checked + 1
            walked.add(chain)
            expected_seq, expected_prev = 1, GENESIS_HASH
        problem = _record_problem(row, expected_seq, expected_prev)
        if problem is not None:
            return broken(problem, expected_seq)
        records_checked += 1
        expected_seq, expected_prev = expected_seq + 1, row.hash
    if chain is not None and (problem := tail_problem()) is not None:
        return broken(problem, expected_seq)
    # A head whose chain has no record left at all: the whole chain was removed.
    for chain, head in found_heads.items():
        if chain not in walked and head.last_seq > 0:
            chains_checked += 1
            expected_seq = 1
            return broken(f"records 1 to {head.last_seq} are missing", 1)
    return AuditVerification(
        intact=True, chains_checked=chains_checked, records_checked=records_checked
    )


# --- the trail, listed ---


@dataclass(frozen=True, slots=True)
class TrailFilter:
    jurisdiction_code: str | None  # None: every jurisdiction (the operator)
    own_key_id: str | None = None  # a regulator's own key: its actions anywhere
    institution_id: UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    action: str | None = None


def trail_page(where: TrailFilter, cursor: str | None, limit: int) -> Select[Any]:
    """Up to `limit` rows of the trail, oldest first (moment, then actions before money, chain,
    seq: a total order), from after `cursor`."""
    return repo.trail_page(
        jurisdiction_code=where.jurisdiction_code,
        own_key_id=where.own_key_id,
        institution_id=where.institution_id,
        since=where.since,
        until=where.until,
        action=where.action,
        after=_decode_cursor(cursor) if cursor is not None else None,
        limit=limit,
    )


def _position(row: Any) -> list[Any]:
    return [as_utc(row.at).isoformat(), row.source, str(row.institution_id), row.seq]


def encode_cursor(row: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(_position(row)).encode()).decode()


def _decode_cursor(cursor: str) -> repo.Position:
    try:
        at, source, institution_id, seq = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return as_utc(datetime.fromisoformat(at)), str(source), UUID(institution_id), int(seq)
    except (binascii.Error, ValueError, TypeError, AttributeError, OverflowError):
        raise InvalidCursor("the cursor is not one this list gave out") from None


async def page(
    session: AsyncSession, where: TrailFilter, request: PageRequest
) -> tuple[list[Any], str | None]:
    query = trail_page(where, request.cursor, request.limit + 1)
    rows = list((await session.execute(query)).all())
    if len(rows) <= request.limit:
        return rows, None
    return rows[: request.limit], encode_cursor(rows[request.limit - 1])
