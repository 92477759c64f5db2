"""The audit trail's SQL: appending to a chain, reading chains back for verification, and the
trail as the regulator lists it (actions and money movements together)."""

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Select,
    String,
    Table,
    and_,
    false,
    func,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy import (
    cast as sql_cast,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.chain import GENESIS_HASH
from app.db.dialect import insert_for
from app.models import AuditHead, AuditRecord, Institution, LedgerEntry, LedgerPosting

heads = cast(Table, AuditHead.__table__)
records = cast(Table, AuditRecord.__table__)
entries = cast(Table, LedgerEntry.__table__)
postings = cast(Table, LedgerPosting.__table__)


async def lock_head(session: AsyncSession, chain: UUID) -> tuple[int, str]:
    """The chain's tip, its row locked until the transaction ends; created at the genesis if the
    chain is new. One statement: an upsert that changes nothing takes the lock and returns the row."""
    connection = await session.connection()
    statement = (
        insert_for(connection, heads)
        .values(institution_id=chain, last_seq=0, last_hash=GENESIS_HASH)
        # On conflict the head keeps its own values: the update changes nothing but locks the row.
        .on_conflict_do_update(
            index_elements=[heads.c.institution_id], set_={"last_seq": heads.c.last_seq}
        )
        .returning(heads.c.last_seq, heads.c.last_hash)
    )
    row = (await connection.execute(statement)).one()
    return row.last_seq, row.last_hash


async def append(session: AsyncSession, row: dict[str, Any]) -> None:
    """Insert the record and move its chain's head onto it."""
    connection = await session.connection()
    await connection.execute(records.insert(), [row])
    await connection.execute(
        update(heads)
        .where(heads.c.institution_id == row["institution_id"])
        .values(last_seq=row["seq"], last_hash=row["hash"])
    )


async def chain_rows(session: AsyncSession, chains: Select[Any] | list[UUID]) -> AsyncIterator[Any]:
    """Every record of the chains named (a list of ids, or a query of them), chain by chain in seq
    order. Streamed: a long trail is never held in memory at once."""
    query = (
        select(records)
        .where(records.c.institution_id.in_(chains))
        .order_by(records.c.institution_id, records.c.seq)
        .execution_options(yield_per=2000)
    )
    stream = await session.stream(query)
    try:
        async for row in stream:
            yield row
    finally:
        await stream.close()


async def chain_heads(session: AsyncSession, chains: Select[Any] | list[UUID]) -> dict[UUID, Any]:
    rows = await session.execute(select(heads).where(heads.c.institution_id.in_(chains)))
    return {row.institution_id: row for row in rows}


def institutions_of(jurisdiction_code: str) -> Select[Any]:
    return select(Institution.id).where(Institution.jurisdiction_code == jurisdiction_code)


# A position in the trail: (moment, source, chain, seq), the order the trail is listed in.
Position = tuple[datetime, str, UUID, int]


def _after(
    position: Position | None, source: str, at: Any, chain: Any, seq: Any
) -> ColumnElement[bool]:
    """The rows of one part (all of one `source`) that come after `position`."""
    if position is None:
        return true()
    after_at, after_source, after_chain, after_seq = position
    if source == after_source:
        later_same_moment = or_(chain > after_chain, and_(chain == after_chain, seq > after_seq))
    else:
        later_same_moment = true() if source > after_source else false()
    return or_(at > after_at, and_(at == after_at, later_same_moment))


def trail_page(
    *,
    jurisdiction_code: str | None,
    own_key_id: str | None,
    institution_id: UUID | None,
    since: datetime | None,
    until: datetime | None,
    action: str | None,
    after: Position | None,
    limit: int,
) -> Select[Any]:
    """Up to `limit` rows of the trail after `after`: actions and money movements together, as one
    row shape (`source` `action` or `money`), oldest first. Each part is filtered, ordered and
    limited on its own table (an institution's by its (institution, moment) index), so a page
    merges two short lists however long the trail.

    A jurisdiction sees the records about its institutions, those naming it (a profile change, a
    key issued for it) and its own key's, and the money movements of its institutions. None:
    everything (the operator)."""
    action_where: list[ColumnElement[bool]] = [
        _after(after, "action", records.c.at, records.c.institution_id, records.c.seq)
    ]
    money_where: list[ColumnElement[bool]] = [
        _after(after, "money", entries.c.posted_at, entries.c.institution_id, entries.c.seq)
    ]
    if jurisdiction_code is not None:
        action_where.append(
            or_(
                records.c.institution_id.in_(institutions_of(jurisdiction_code)),
                records.c.jurisdiction_code == jurisdiction_code,
                and_(records.c.actor_role == "regulator", records.c.actor_id == own_key_id)
                if own_key_id is not None
                else false(),
            )
        )
        money_where.append(entries.c.institution_id.in_(institutions_of(jurisdiction_code)))
    if institution_id is not None:
        action_where.append(records.c.institution_id == institution_id)
        money_where.append(entries.c.institution_id == institution_id)
    if since is not None:
        action_where.append(records.c.at >= since)
        money_where.append(entries.c.posted_at >= since)
    if until is not None:
        action_where.append(records.c.at < until)
        money_where.append(entries.c.posted_at < until)
    if action is not None:
        action_where.append(records.c.action == action)
        kind = action.removeprefix("money.")
        money_where.append(entries.c.kind == kind if kind != action else false())
    # The entry's debit side; cast, as PostgreSQL sums bigints into numeric.
    amount = (
        select(sql_cast(func.coalesce(func.sum(postings.c.amount_fen), 0), BigInteger))
        .where(
            postings.c.institution_id == entries.c.institution_id,
            postings.c.entry_seq == entries.c.seq,
            postings.c.amount_fen > 0,
        )
        .scalar_subquery()
    )
    actions = (
        select(
            literal("action", String).label("source"),
            records.c.institution_id,
            records.c.seq,
            records.c.at,
            records.c.actor_role,
            records.c.actor_id,
            records.c.action,
            records.c.object_type,
            records.c.object_id,
            records.c.address,
            records.c.details,
            sql_cast(null(), String).label("memo"),
            sql_cast(null(), BigInteger).label("amount_fen"),
        )
        .where(*action_where)
        .order_by(records.c.at, records.c.institution_id, records.c.seq)
        .limit(limit)
    )
    money = (
        select(
            literal("money", String).label("source"),
            entries.c.institution_id,
            entries.c.seq,
            entries.c.posted_at.label("at"),
            entries.c.actor_role,
            entries.c.actor_id,
            (literal("money.", String) + entries.c.kind).label("action"),
            literal("ledger_entry", String).label("object_type"),
            entries.c.idempotency_key.label("object_id"),
            entries.c.address,
            sql_cast(null(), JSON).label("details"),
            entries.c.memo,
            amount.label("amount_fen"),
        )
        .where(*money_where)
        .order_by(entries.c.posted_at, entries.c.institution_id, entries.c.seq)
        .limit(limit)
    )
    # Each part in a subquery of its own: SQLite takes no ORDER BY inside a UNION's members.
    trail = union_all(
        select(actions.subquery("actions")), select(money.subquery("money"))
    ).subquery("trail")
    c = trail.c
    return select(trail).order_by(c.at, c.source, c.institution_id, c.seq).limit(limit)
