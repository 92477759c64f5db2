"""All of the ledger's SQL, in SQLAlchemy Core: the write path cannot afford the ORM's overhead.

Every statement names one institution, so each ledger transaction stays on one shard when the tables
are distributed by `institution_id`; the statements of a group commit across institutions on one
database (`lock_heads`, `tips_keys_and_accounts_of`, `write_journals`) name several, and are used
only where the deployment is not sharded (GROUP_COMMIT_SCOPE=database).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    Join,
    String,
    Table,
    bindparam,
    func,
    literal_column,
    null,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.batch import among, in_list
from app.db.dialect import insert_for
from app.ledger.chain import GENESIS_HASH
from app.ledger.types import (
    Account,
    AccountKind,
    Checkpoint,
    PostedEntry,
    Posting,
    Side,
    Transfer,
    TransferStatus,
)
from app.models import (
    Enrollment,
    LedgerAccount,
    LedgerCheckpoint,
    LedgerEntry,
    LedgerHead,
    LedgerPosting,
    LedgerTransfer,
)

heads = cast(Table, LedgerHead.__table__)
accounts = cast(Table, LedgerAccount.__table__)
entries = cast(Table, LedgerEntry.__table__)
postings = cast(Table, LedgerPosting.__table__)
transfers = cast(Table, LedgerTransfer.__table__)
checkpoints = cast(Table, LedgerCheckpoint.__table__)
enrollments = cast(Table, Enrollment.__table__)

_ACCOUNT_COLUMNS = (
    accounts.c.institution_id,
    accounts.c.id,
    accounts.c.code,
    accounts.c.kind,
    accounts.c.normal,
    accounts.c.lower_limit_fen,
    accounts.c.balance_fen,
)

# The statements of every ledger write, built once: building a statement costs more Python than
# running it. Parameters are bound by name at each call.
_LOCK_HEAD = (
    select(heads.c.institution_id)
    .where(heads.c.institution_id == bindparam("institution_id"))
    .with_for_update()
)
_ACCOUNTS_BY_CODE = select(*_ACCOUNT_COLUMNS).where(
    accounts.c.institution_id == bindparam("institution_id"),
    accounts.c.code.in_(bindparam("codes", expanding=True)),
)
_KEY_COLUMNS = (entries.c.idempotency_key, entries.c.seq, entries.c.content_hash)
_ENTRIES_BY_KEY = select(*_KEY_COLUMNS).where(
    entries.c.institution_id == bindparam("institution_id"),
    entries.c.idempotency_key.in_(bindparam("keys", expanding=True)),
)


def _nulls(columns: Sequence[Any]) -> list[Any]:
    """Typed NULLs standing in for `columns` in another part of a UNION."""
    return [sql_cast(null(), column.type).label(column.name) for column in columns]


def _part(name: str) -> Any:
    return literal_column(f"'{name}'", String).label("part")


# What a post reads once it holds the lock, in one statement: the chain's tip, the accounts its
# entries name (by id, or by code for a caller that has no ids yet), and which of its keys are
# already posted; each row is one of them, named by `part` (an account asked both ways comes
# twice, alike). It must be a statement of its own after the lock's: one folded into the lock
# would read the snapshot taken before the lock was granted, and with it stale balances.
_TIP, _ACCOUNT, _KEY = "tip", "account", "key"
_TIP_KEYS_AND_ACCOUNTS = union_all(
    select(_part(_TIP), *_nulls(_ACCOUNT_COLUMNS), *_nulls(_KEY_COLUMNS[:1]))
    .add_columns(heads.c.last_seq.label("seq"), heads.c.last_hash.label("content_hash"))
    .where(heads.c.institution_id == bindparam("institution_id")),
    select(_part(_ACCOUNT), *_ACCOUNT_COLUMNS, *_nulls(_KEY_COLUMNS)).where(
        accounts.c.institution_id == bindparam("institution_id"),
        accounts.c.id.in_(bindparam("ids", expanding=True)),
    ),
    select(_part(_ACCOUNT), *_ACCOUNT_COLUMNS, *_nulls(_KEY_COLUMNS)).where(
        accounts.c.institution_id == bindparam("institution_id"),
        accounts.c.code.in_(bindparam("codes", expanding=True)),
    ),
    select(_part(_KEY), *_nulls(_ACCOUNT_COLUMNS), *_KEY_COLUMNS).where(
        entries.c.institution_id == bindparam("institution_id"),
        entries.c.idempotency_key.in_(bindparam("keys", expanding=True)),
    ),
)


@dataclass(frozen=True, slots=True)
class LockedRead:
    """What `tip_keys_and_accounts` found: the chain's tip (None before the head exists), the
    posted keys among those asked with their seq and content hash, and the accounts asked that
    exist."""

    tip: tuple[int, str] | None
    posted: dict[str, tuple[int, str]]
    accounts: dict[UUID, Account]


def _account(row: Any) -> Account:
    return Account(
        institution_id=row.institution_id,
        id=row.id,
        code=row.code,
        kind=AccountKind(row.kind),
        normal=Side(row.normal),
        lower_limit_fen=row.lower_limit_fen,
        balance_fen=row.balance_fen,
    )


# --- heads and accounts -------------------------------------------------------------------------


async def ensure_head(connection: AsyncConnection, institution_id: UUID, now: datetime) -> None:
    await connection.execute(
        insert_for(connection, heads)
        .values(institution_id=institution_id, last_seq=0, last_hash=GENESIS_HASH, updated_at=now)
        .on_conflict_do_nothing(index_elements=["institution_id"])
    )


_HELD = "ledger_locks"  # in the connection's info: (transaction, institutions locked in it)


def _innermost_transaction(connection: AsyncConnection) -> Any:
    sync = connection.sync_connection
    return None if sync is None else sync.get_nested_transaction() or sync.get_transaction()


async def lock_head(connection: AsyncConnection, institution_id: UUID) -> None:
    """Take the institution's ledger lock (its head row) for the rest of the transaction, once:
    asked again within the same transaction it sends nothing, as the row lock is held until the
    transaction ends. Remembered per innermost transaction: a savepoint rolled back releases what
    it locked, so a lock taken in another (or an outer) one is taken again rather than trusted. On
    SQLite the write lock taken at BEGIN IMMEDIATE already serialises every writer."""
    await lock_heads(connection, [institution_id])


def _heads_held(connection: AsyncConnection) -> tuple[Any, set[UUID]]:
    """The innermost transaction and the institutions whose ledger lock it holds."""
    transaction = _innermost_transaction(connection)
    held = connection.info.get(_HELD)
    if held is None or held[0] is not transaction:
        held = (transaction, set[UUID]())
        if transaction is not None:
            connection.info[_HELD] = held
    return held


def head_locked(connection: AsyncConnection, institution_id: UUID) -> None:
    """Remember that the institution's head row is locked in the connection's innermost
    transaction (by a caller's statement that locked it with rows of its own), so that
    `lock_head` sends nothing for it."""
    _heads_held(connection)[1].add(institution_id)


async def lock_heads(connection: AsyncConnection, institution_ids: Iterable[UUID]) -> None:
    """`lock_head` of several institutions (a group commit across institutions on one database),
    in one statement, in the order of their ids: two such transactions then never wait on each
    other in a circle, and one of a single institution takes the same lock."""
    _, held = _heads_held(connection)
    wanted = sorted(set(institution_ids) - held)
    if not wanted:
        return
    if len(wanted) == 1:
        await connection.execute(_LOCK_HEAD, {"institution_id": wanted[0]})
    else:
        await connection.execute(_locking_heads(connection.dialect.name), {"ids": wanted})
    held.update(wanted)


@cache
def _locking_heads(dialect: str) -> Any:
    return (
        select(heads.c.institution_id)
        .where(in_list(heads.c.institution_id, "ids", dialect))
        .order_by(heads.c.institution_id)
        .with_for_update()
    )


async def institution_ids(connection: AsyncConnection) -> list[UUID]:
    """Every institution with a ledger: for operators' sweeps, the one read across institutions."""
    rows = await connection.execute(select(heads.c.institution_id).order_by(heads.c.institution_id))
    return [row.institution_id for row in rows]


async def read_head(connection: AsyncConnection, institution_id: UUID) -> tuple[int, str] | None:
    row = (
        await connection.execute(
            select(heads.c.last_seq, heads.c.last_hash).where(
                heads.c.institution_id == institution_id
            )
        )
    ).first()
    return None if row is None else (row.last_seq, row.last_hash)


async def insert_accounts(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    await connection.execute(
        insert_for(connection, accounts).on_conflict_do_nothing(
            index_elements=["institution_id", "code"]
        ),
        rows,
    )


async def accounts_by_code(
    connection: AsyncConnection, institution_id: UUID, codes: Sequence[str]
) -> dict[str, Account]:
    rows = await connection.execute(
        _ACCOUNTS_BY_CODE, {"institution_id": institution_id, "codes": list(codes)}
    )
    return {row.code: _account(row) for row in rows}


async def accounts_by_id(connection: AsyncConnection, institution_id: UUID) -> dict[UUID, Account]:
    """Every account of the institution (a post reads its own through `keys_and_accounts`)."""
    query = select(*_ACCOUNT_COLUMNS).where(accounts.c.institution_id == institution_id)
    return {row.id: _account(row) for row in await connection.execute(query)}


async def totals_by_kind(
    connection: AsyncConnection, institution_id: UUID
) -> dict[AccountKind, int]:
    total = func.sum(accounts.c.balance_fen * accounts.c.normal)
    rows = await connection.execute(
        select(accounts.c.kind, total.label("total"))
        .where(accounts.c.institution_id == institution_id)
        .group_by(accounts.c.kind)
    )
    return {AccountKind(row.kind): int(row.total) for row in rows}


async def totals_by_kind_of(
    connection: AsyncConnection,
    institution_ids: Sequence[UUID],
    posted_until: datetime | None = None,
) -> dict[UUID, dict[str, int]]:
    """`totals_by_kind` of many institutions in one GROUP BY, for a regulator's page of them: from
    the maintained balances, or replayed from the journal up to `posted_until`; keyed by the kind's
    plain string (see `ledger.balances_by_kind_of`). A read only, so it may span institutions (and
    shards) where a write never does."""
    if posted_until is None:
        query = (
            select(
                accounts.c.institution_id,
                accounts.c.kind,
                func.sum(accounts.c.balance_fen * accounts.c.normal).label("total"),
            )
            .where(among(connection, accounts.c.institution_id, institution_ids))
            .group_by(accounts.c.institution_id, accounts.c.kind)
        )
    else:
        query = (
            select(
                accounts.c.institution_id,
                accounts.c.kind,
                func.sum(postings.c.amount_fen * accounts.c.normal).label("total"),
            )
            .select_from(entries_postings_accounts())
            .where(
                among(connection, postings.c.institution_id, institution_ids),
                among(connection, accounts.c.institution_id, institution_ids),
                entries.c.posted_at <= posted_until,
            )
            .group_by(accounts.c.institution_id, accounts.c.kind)
        )
    found: dict[UUID, dict[str, int]] = {}
    for institution_id, kind, total in await connection.execute(query):
        found.setdefault(institution_id, {})[kind] = int(total)
    return found


def entries_postings_accounts() -> Join:
    """Each posting with its entry and its account (the same institution's, by its key)."""
    return entries.join(
        postings,
        (postings.c.institution_id == entries.c.institution_id)
        & (postings.c.entry_seq == entries.c.seq),
    ).join(
        accounts,
        (accounts.c.institution_id == postings.c.institution_id)
        & (accounts.c.id == postings.c.account_id),
    )


async def credited_to_kind_since(
    connection: AsyncConnection,
    institution_ids: Sequence[UUID],
    account_kind: AccountKind,
    entry_kind: str,
    since: datetime,
    until: datetime | None = None,
) -> dict[UUID, int]:
    """`credited_since` of many institutions in one GROUP BY: what entries of `entry_kind` posted
    from `since` on (and until `until`) credited to each one's accounts of `account_kind`."""
    query = (
        select(entries.c.institution_id, func.sum(-postings.c.amount_fen).label("credited"))
        .select_from(entries_postings_accounts())
        .where(
            among(connection, entries.c.institution_id, institution_ids),
            among(connection, accounts.c.institution_id, institution_ids),
            entries.c.kind == entry_kind,
            entries.c.posted_at >= since,
            accounts.c.kind == account_kind,
            postings.c.amount_fen < 0,
        )
        .group_by(entries.c.institution_id)
    )
    if until is not None:
        query = query.where(entries.c.posted_at <= until)
    return {row.institution_id: int(row.credited) for row in await connection.execute(query)}


async def entry_hashes(
    connection: AsyncConnection, institution_id: UUID, seqs: Sequence[int]
) -> dict[int, str]:
    """The chained hash of each of the institution's entries asked for that exists."""
    rows = await connection.execute(
        select(entries.c.seq, entries.c.hash).where(
            entries.c.institution_id == institution_id, entries.c.seq.in_(seqs)
        )
    )
    return {row.seq: row.hash for row in rows}


async def institutions_of_accounts(
    connection: AsyncConnection, ids: Iterable[UUID]
) -> dict[UUID, UUID]:
    """Only for explaining a refusal: which institution an unknown account really belongs to."""
    rows = await connection.execute(
        select(accounts.c.id, accounts.c.institution_id).where(accounts.c.id.in_(list(ids)))
    )
    return {row.id: row.institution_id for row in rows}


# --- journal ------------------------------------------------------------------------------------


async def entries_by_key(
    connection: AsyncConnection, institution_id: UUID, keys: Sequence[str]
) -> dict[str, tuple[int, str]]:
    """Already-posted keys among `keys`, with their seq and content hash."""
    rows = await connection.execute(
        _ENTRIES_BY_KEY, {"institution_id": institution_id, "keys": list(keys)}
    )
    return {row.idempotency_key: (row.seq, row.content_hash) for row in rows}


async def tip_keys_and_accounts(
    connection: AsyncConnection,
    institution_id: UUID,
    keys: Sequence[str],
    account_ids: Iterable[UUID] = (),
    codes: Iterable[str] = (),
) -> LockedRead:
    """Everything a post reads under the lock, in one round trip."""
    rows = await connection.execute(
        _TIP_KEYS_AND_ACCOUNTS,
        {
            "institution_id": institution_id,
            "keys": list(keys),
            "ids": list(account_ids),
            "codes": list(codes),
        },
    )
    return _locked_reads(rows, [institution_id], institution_id)[institution_id]


def _locked_reads(
    rows: Iterable[Any], institution_ids: Iterable[UUID], tips_of: UUID | None = None
) -> dict[UUID, LockedRead]:
    """The rows of a read under the lock, each institution's apart (a tip row names its
    institution unless `tips_of` says whose it is)."""
    reads = {institution_id: LockedRead(None, {}, {}) for institution_id in institution_ids}
    tips: dict[UUID, tuple[int, str]] = {}
    for row in rows:
        if row.part == _ACCOUNT:
            reads[row.institution_id].accounts[row.id] = _account(row)
        elif row.part == _KEY:
            reads[tips_of or row.institution_id].posted[row.idempotency_key] = (
                row.seq,
                row.content_hash,
            )
        else:
            tips[tips_of or row.institution_id] = (row.seq, row.content_hash)
    return {
        institution_id: LockedRead(tips.get(institution_id), read.posted, read.accounts)
        for institution_id, read in reads.items()
    }


# `_TIP_KEYS_AND_ACCOUNTS` of several institutions (accounts asked by code only), on PostgreSQL:
# each part names its institution, and the pairs asked go as two arrays.
_TIPS_KEYS_AND_ACCOUNTS = text("""
    SELECT 'tip' AS part, institution_id, NULL::uuid AS id, NULL::varchar AS code,
           NULL::varchar AS kind, NULL::smallint AS normal, NULL::bigint AS lower_limit_fen,
           NULL::bigint AS balance_fen, NULL::varchar AS idempotency_key, last_seq AS seq,
           last_hash AS content_hash
      FROM ledger_heads WHERE institution_id = ANY(CAST(:ids AS uuid[]))
    UNION ALL
    SELECT 'account', a.institution_id, a.id, a.code, a.kind, a.normal, a.lower_limit_fen,
           a.balance_fen, NULL, NULL, NULL
      FROM unnest(CAST(:code_institution AS uuid[]), CAST(:codes AS varchar[]))
             AS w(institution_id, code)
      JOIN ledger_accounts a ON a.institution_id = w.institution_id AND a.code = w.code
    UNION ALL
    SELECT 'key', e.institution_id, NULL, NULL, NULL, NULL, NULL, NULL, e.idempotency_key, e.seq,
           e.content_hash
      FROM unnest(CAST(:key_institution AS uuid[]), CAST(:keys AS varchar[]))
             AS w(institution_id, idempotency_key)
      JOIN ledger_entries e
        ON e.institution_id = w.institution_id AND e.idempotency_key = w.idempotency_key
""")


async def tips_keys_and_accounts_of(
    connection: AsyncConnection, wanted: Mapping[UUID, tuple[Sequence[str], Sequence[str]]]
) -> dict[UUID, LockedRead]:
    """`tip_keys_and_accounts` of several institutions (each locked), given each one's keys and
    account codes: on PostgreSQL in one round trip for them all."""
    if connection.dialect.name != "postgresql":
        return {
            institution_id: await tip_keys_and_accounts(
                connection, institution_id, keys, codes=codes
            )
            for institution_id, (keys, codes) in wanted.items()
        }
    pairs = {
        "code": [(i, code) for i, (_, codes) in wanted.items() for code in codes],
        "key": [(i, key) for i, (keys, _) in wanted.items() for key in keys],
    }
    rows = await connection.execute(
        _TIPS_KEYS_AND_ACCOUNTS,
        {
            "ids": list(wanted),
            "code_institution": [i for i, _ in pairs["code"]],
            "codes": [code for _, code in pairs["code"]],
            "key_institution": [i for i, _ in pairs["key"]],
            "keys": [key for _, key in pairs["key"]],
        },
    )
    return _locked_reads(rows, wanted)


# PostgreSQL takes whole columns as arrays: one statement and one round trip for any number of
# entries of any number of institutions (a group commit across institutions on one database), with
# no per-row work in the driver. The journal's guards need its parts in order: every posting written
# before any entry (a posting's trigger refuses one for an entry that exists) and before any balance
# moves (an account's trigger checks the move against its postings). Sibling parts of one statement
# run in no promised order, so entries and balances both read `written`, the count of postings,
# which exists only once every posting is. The entries' balance trigger and the heads' run at the
# statement's end and see all of it.
_WRITE_JOURNAL = text("""
    WITH new_postings AS (
        INSERT INTO ledger_postings (institution_id, entry_seq, line_no, account_id, amount_fen)
        SELECT * FROM unnest(
            CAST(:posting_institution AS uuid[]), CAST(:entry_seq AS bigint[]),
            CAST(:line_no AS smallint[]), CAST(:account_id AS uuid[]),
            CAST(:amount_fen AS bigint[]))
        RETURNING entry_seq
    ), written AS (
        SELECT count(*) AS postings FROM new_postings
    ), new_entries AS (
        INSERT INTO ledger_entries (institution_id, seq, idempotency_key, kind, memo, posted_at,
                                    posting_count, content_hash, prev_hash, hash,
                                    actor_role, actor_id, address)
        SELECT institution_id, seq, idempotency_key, kind, memo, :posted_at,
               posting_count, content_hash, prev_hash, hash, :actor_role, :actor_id, :address
          FROM unnest(CAST(:entry_institution AS uuid[]), CAST(:seq AS bigint[]),
                      CAST(:idempotency_key AS varchar[]), CAST(:kind AS varchar[]),
                      CAST(:memo AS varchar[]), CAST(:posting_count AS smallint[]),
                      CAST(:content_hash AS varchar[]), CAST(:prev_hash AS varchar[]),
                      CAST(:hash AS varchar[]))
            AS e(institution_id, seq, idempotency_key, kind, memo, posting_count, content_hash,
                 prev_hash, hash)
         CROSS JOIN written
    ), new_balances AS (
        UPDATE ledger_accounts SET balance_fen = b.balance_fen, last_seq = b.last_seq
          FROM unnest(CAST(:balance_institution AS uuid[]), CAST(:balance_account AS uuid[]),
                      CAST(:balance_fen AS bigint[]), CAST(:balance_last_seq AS bigint[]))
            AS b(institution_id, id, balance_fen, last_seq)
         CROSS JOIN written
         WHERE ledger_accounts.institution_id = b.institution_id AND ledger_accounts.id = b.id
    )
    UPDATE ledger_heads SET last_seq = h.last_seq, last_hash = h.last_hash, updated_at = :posted_at
      FROM unnest(CAST(:head_institution AS uuid[]), CAST(:head_seq AS bigint[]),
                  CAST(:head_hash AS varchar[])) AS h(institution_id, last_seq, last_hash)
     WHERE ledger_heads.institution_id = h.institution_id
""")


@dataclass(frozen=True, slots=True)
class JournalWrite:
    """One institution's part of a journal write: its new entries and postings (rows in the
    tables' shape), and each account they changed with its new balance and last entry."""

    institution_id: UUID
    entry_rows: list[dict[str, Any]]
    posting_rows: list[dict[str, Any]]
    balances: dict[UUID, tuple[int, int]]


def _columns(rows: list[dict[str, Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in names}


async def write_journal(
    connection: AsyncConnection,
    institution_id: UUID,
    entry_rows: list[dict[str, Any]],
    posting_rows: list[dict[str, Any]],
    balances: dict[UUID, tuple[int, int]],
    now: datetime,
) -> None:
    """Append entries and their postings, set the balances they changed (each with the last entry
    that changed it) and move the head to the last entry: the whole write of `service.post_many`,
    in a fixed number of statements."""
    await write_journals(
        connection, [JournalWrite(institution_id, entry_rows, posting_rows, balances)], now
    )


async def write_journals(
    connection: AsyncConnection, writes: Sequence[JournalWrite], now: datetime
) -> None:
    """`write_journal` of several institutions (each holding its ledger lock): on PostgreSQL one
    statement for them all; on SQLite each institution's in turn.

    The order is the database's guards': postings first (the entry's insert trigger checks that
    they sum to zero), then entries, then balances (moved by exactly the new postings), then the
    head (onto the last entry)."""
    if connection.dialect.name != "postgresql":
        for write in writes:
            await _write_journal_plainly(connection, write, now)
        return
    all_entries = [row for write in writes for row in write.entry_rows]
    all_postings = [row for write in writes for row in write.posting_rows]
    last = all_entries[-1]
    await connection.execute(
        _WRITE_JOURNAL,
        {
            "posting_institution": [row["institution_id"] for row in all_postings],
            **_columns(all_postings, ("entry_seq", "line_no", "account_id", "amount_fen")),
            "posted_at": now,
            # One actor and address for the call's entries: scalars, like the moment.
            "actor_role": last["actor_role"],
            "actor_id": last["actor_id"],
            "address": last["address"],
            "entry_institution": [row["institution_id"] for row in all_entries],
            **_columns(
                all_entries,
                (
                    "seq",
                    "idempotency_key",
                    "kind",
                    "memo",
                    "posting_count",
                    "content_hash",
                    "prev_hash",
                    "hash",
                ),
            ),
            "balance_institution": [
                write.institution_id for write in writes for _ in write.balances
            ],
            "balance_account": [account for write in writes for account in write.balances],
            "balance_fen": [b for write in writes for b, _ in write.balances.values()],
            "balance_last_seq": [seq for write in writes for _, seq in write.balances.values()],
            "head_institution": [write.institution_id for write in writes],
            "head_seq": [write.entry_rows[-1]["seq"] for write in writes],
            "head_hash": [write.entry_rows[-1]["hash"] for write in writes],
        },
    )


async def _write_journal_plainly(
    connection: AsyncConnection, write: JournalWrite, now: datetime
) -> None:
    institution_id = write.institution_id
    await connection.execute(postings.insert(), write.posting_rows)
    await connection.execute(entries.insert(), write.entry_rows)
    await connection.execute(
        update(accounts)
        .where(accounts.c.institution_id == institution_id, accounts.c.id == bindparam("account"))
        .values(balance_fen=bindparam("balance"), last_seq=bindparam("seq")),
        [
            {"account": account, "balance": balance, "seq": seq}
            for account, (balance, seq) in write.balances.items()
        ],
    )
    await connection.execute(
        update(heads)
        .where(heads.c.institution_id == institution_id)
        .values(
            last_seq=write.entry_rows[-1]["seq"],
            last_hash=write.entry_rows[-1]["hash"],
            updated_at=now,
        )
    )


async def load_entries(
    connection: AsyncConnection, institution_id: UUID, seqs: Sequence[int]
) -> dict[int, PostedEntry]:
    entry_rows = (
        await connection.execute(
            select(entries).where(
                entries.c.institution_id == institution_id, entries.c.seq.in_(seqs)
            )
        )
    ).all()
    lines: dict[int, list[Posting]] = {seq: [] for seq in seqs}
    for row in await connection.execute(
        select(postings.c.entry_seq, postings.c.account_id, postings.c.amount_fen)
        .where(postings.c.institution_id == institution_id, postings.c.entry_seq.in_(seqs))
        .order_by(postings.c.entry_seq, postings.c.line_no)
    ):
        lines[row.entry_seq].append(Posting(row.account_id, row.amount_fen))
    return {
        row.seq: PostedEntry(
            institution_id=institution_id,
            seq=row.seq,
            idempotency_key=row.idempotency_key,
            kind=row.kind,
            memo=row.memo,
            posted_at=row.posted_at,
            postings=tuple(lines[row.seq]),
            hash=row.hash,
            replayed=True,
        )
        for row in entry_rows
    }


async def stream_journal(connection: AsyncConnection, institution_id: UUID) -> Any:
    """Entries in seq order, each with its postings in line order, for verification. Streams, so a
    long journal is not held in memory at once."""
    query = (
        select(
            entries.c.seq,
            entries.c.idempotency_key,
            entries.c.kind,
            entries.c.memo,
            entries.c.posted_at,
            entries.c.posting_count,
            entries.c.content_hash,
            entries.c.prev_hash,
            entries.c.hash,
            entries.c.actor_role,
            entries.c.actor_id,
            entries.c.address,
            postings.c.line_no,
            postings.c.account_id,
            postings.c.amount_fen,
        )
        .select_from(
            entries.outerjoin(
                postings,
                (postings.c.institution_id == entries.c.institution_id)
                & (postings.c.entry_seq == entries.c.seq),
            )
        )
        .where(entries.c.institution_id == institution_id)
        .order_by(entries.c.seq, postings.c.line_no)
    )
    return await connection.stream(query.execution_options(yield_per=2000))


async def journal_sums(
    connection: AsyncConnection, institution_id: UUID, posted_until: datetime | None = None
) -> dict[UUID, int]:
    """Each account's balance replayed from the journal, optionally as of a moment."""
    query = (
        select(postings.c.account_id, func.sum(postings.c.amount_fen).label("total"))
        .where(postings.c.institution_id == institution_id)
        .group_by(postings.c.account_id)
    )
    if posted_until is not None:
        query = query.join(
            entries,
            (entries.c.institution_id == postings.c.institution_id)
            & (entries.c.seq == postings.c.entry_seq),
        ).where(entries.c.posted_at <= posted_until)
    return {row.account_id: int(row.total) for row in await connection.execute(query)}


async def credited_since(
    connection: AsyncConnection, institution_id: UUID, account_id: UUID, kind: str, since: datetime
) -> int:
    total = await connection.scalar(
        select(func.coalesce(func.sum(-postings.c.amount_fen), 0))
        .select_from(
            entries.join(
                postings,
                (postings.c.institution_id == entries.c.institution_id)
                & (postings.c.entry_seq == entries.c.seq),
            )
        )
        .where(
            entries.c.institution_id == institution_id,
            entries.c.kind == kind,
            entries.c.posted_at >= since,
            postings.c.account_id == account_id,
            postings.c.amount_fen < 0,
        )
    )
    return int(total or 0)


# --- two-phase transfers ------------------------------------------------------------------------


def _transfer(row: Any, *, replayed: bool = False) -> Transfer:
    return Transfer(
        institution_id=row.institution_id,
        id=row.id,
        source_account_id=row.source_account_id,
        transit_account_id=row.transit_account_id,
        settle_account_id=row.settle_account_id,
        amount_fen=row.amount_fen,
        status=TransferStatus(row.status),
        reserve_seq=row.reserve_seq,
        resolve_seq=row.resolve_seq,
        replayed=replayed,
    )


async def insert_transfer(connection: AsyncConnection, row: dict[str, Any]) -> None:
    await connection.execute(transfers.insert(), [row])


async def transfer_by_id(
    connection: AsyncConnection, institution_id: UUID, transfer_id: UUID
) -> Transfer | None:
    row = (
        await connection.execute(
            select(transfers).where(
                transfers.c.institution_id == institution_id, transfers.c.id == transfer_id
            )
        )
    ).first()
    return None if row is None else _transfer(row)


async def transfer_by_reserve_seq(
    connection: AsyncConnection, institution_id: UUID, reserve_seq: int
) -> Transfer | None:
    row = (
        await connection.execute(
            select(transfers).where(
                transfers.c.institution_id == institution_id, transfers.c.reserve_seq == reserve_seq
            )
        )
    ).first()
    return None if row is None else _transfer(row, replayed=True)


async def resolve_transfer(
    connection: AsyncConnection,
    institution_id: UUID,
    transfer_id: UUID,
    status: TransferStatus,
    resolve_seq: int,
    now: datetime,
) -> None:
    await connection.execute(
        update(transfers)
        .where(
            transfers.c.institution_id == institution_id,
            transfers.c.id == transfer_id,
            transfers.c.status == TransferStatus.pending,
        )
        .values(status=status, resolve_seq=resolve_seq, resolved_at=now)
    )


async def transfers_of(connection: AsyncConnection, institution_id: UUID) -> list[Transfer]:
    rows = await connection.execute(
        select(transfers)
        .where(transfers.c.institution_id == institution_id)
        .order_by(transfers.c.reserve_seq)
    )
    return [_transfer(row) for row in rows]


# --- checkpoints --------------------------------------------------------------------------------


async def checkpoint_heads(connection: AsyncConnection, day: date, now: datetime) -> int:
    """Copy every institution's head into the day's checkpoints, where it has none yet; return how
    many were written. One statement: on Citus, heads and checkpoints are co-located by
    institution, so it runs on every shard at once."""
    result = await connection.execute(
        insert_for(connection, checkpoints)
        .from_select(
            ["institution_id", "day", "seq", "hash", "taken_at"],
            # SQLite parses INSERT ... SELECT ... ON CONFLICT only when the SELECT has a WHERE.
            select(
                heads.c.institution_id,
                bindparam("day", day, type_=checkpoints.c.day.type),
                heads.c.last_seq,
                heads.c.last_hash,
                bindparam("now", now, type_=checkpoints.c.taken_at.type),
            ).where(true()),
        )
        .on_conflict_do_nothing(index_elements=["institution_id", "day"])
    )
    return result.rowcount


async def checkpoints_of(connection: AsyncConnection, institution_id: UUID) -> list[Checkpoint]:
    rows = await connection.execute(
        select(checkpoints)
        .where(checkpoints.c.institution_id == institution_id)
        .order_by(checkpoints.c.day)
    )
    return [
        Checkpoint(row.institution_id, row.day, row.seq, row.hash, row.taken_at) for row in rows
    ]


# --- the enrollments' copy of the money ---------------------------------------------------------


async def enrollment_counters(connection: AsyncConnection, institution_id: UUID) -> Any:
    """Each enrollment's paid, released (confirmed) and refunded fen, oldest first."""
    return await connection.execute(
        select(
            enrollments.c.id,
            enrollments.c.paid_fen,
            enrollments.c.confirmed_fen,
            enrollments.c.refunded_fen,
        )
        .where(enrollments.c.institution_id == institution_id)
        .order_by(enrollments.c.created_at, enrollments.c.id)
    )
