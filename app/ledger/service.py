"""The ledger's operations. Every function runs inside the caller's transaction (a unit of work run
by `app.db.transaction.run_in_transaction`, or a request's) and never commits.

See `app.ledger` for the concurrency design: each write function first takes the institution's
ledger lock via `repository.lock_head`.
"""

import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from app.audit.context import client_address, current_actor
from app.kit.clock import utcnow
from app.kit.metrics import LEDGER_ENTRIES
from app.kit.money import INT64_MAX, is_fen
from app.kit.workdays import local_date
from app.ledger import repository as repo
from app.ledger.chain import GENESIS_HASH, chain_hash, content_hash
from app.ledger.errors import (
    BalanceOutOfRange,
    CrossInstitutionEntry,
    IdempotencyKeyReused,
    InsufficientBalance,
    InvalidAmount,
    InvalidEntry,
    LedgerError,
    LedgerNotFound,
    TransferAlreadyResolved,
    TransferNotFound,
    UnbalancedEntry,
    UnknownAccount,
)
from app.ledger.types import (
    Account,
    AccountKind,
    Checkpoint,
    EntryDraft,
    PostedEntry,
    Posting,
    Transfer,
    TransferStatus,
    VerifyReport,
)

MAX_POSTINGS_PER_ENTRY = 100
MAX_ENTRIES_PER_CALL = 1000
MAX_KEY_LENGTH = 200

Result = PostedEntry | LedgerError


# --- accounts -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """An account to open. `ref` tells apart accounts of one kind (e.g. the enrollment of a prepaid
    account). By default no account may go below zero, as DOMAIN.md requires of escrow cash and of
    every liability; `lower_limit_fen=None` removes the limit."""

    kind: AccountKind
    ref: str | None = None
    lower_limit_fen: int | None = 0

    @property
    def code(self) -> str:
        return self.kind if self.ref is None else f"{self.kind}:{self.ref}"


def prepaid_spec(enrollment_id: UUID) -> AccountSpec:
    """An enrollment's prepaid liability: what its payer paid and has not yet been released."""
    return AccountSpec(AccountKind.prepaid, ref=str(enrollment_id))


async def open_accounts(
    connection: AsyncConnection, institution_id: UUID, specs: Sequence[AccountSpec]
) -> list[Account]:
    """Open the accounts that do not exist yet and return all of them, in the order asked. Reads
    first, so the usual call (the accounts exist) costs one query and writes nothing. Opening needs
    no ledger lock: an account starts at zero and is unique by its code."""
    found = await repo.accounts_by_code(connection, institution_id, [spec.code for spec in specs])
    return await _opened(connection, institution_id, specs, found)


async def posted_and_open_accounts(
    connection: AsyncConnection,
    institution_id: UUID,
    keys: Sequence[str],
    specs: Sequence[AccountSpec],
) -> tuple[dict[str, int], list[Account]]:
    """For a caller holding the ledger lock (`lock`) that decides what to post by what was posted
    before (a bank payment's earlier outcome): the seq of each of `keys` already posted, and
    `open_accounts(specs)`, in one read."""
    read = await repo.tip_keys_and_accounts(
        connection, institution_id, keys, codes=[spec.code for spec in specs]
    )
    found = {account.code: account for account in read.accounts.values()}
    posted = {key: seq for key, (seq, _) in read.posted.items()}
    return posted, await _opened(connection, institution_id, specs, found)


async def _opened(
    connection: AsyncConnection,
    institution_id: UUID,
    specs: Sequence[AccountSpec],
    found: dict[str, Account],
) -> list[Account]:
    """The accounts `specs` name, given those `found` by code: the missing ones opened."""
    missing = [spec for spec in specs if spec.code not in found]
    if missing:
        now = utcnow()
        await repo.ensure_head(connection, institution_id, now)
        await repo.insert_accounts(
            connection,
            [
                {
                    "institution_id": institution_id,
                    "id": uuid.uuid4(),
                    "code": spec.code,
                    "kind": spec.kind,
                    "normal": spec.kind.normal,
                    "lower_limit_fen": spec.lower_limit_fen,
                    "balance_fen": 0,
                    "created_at": now,
                }
                for spec in missing
            ],
        )
        found = await repo.accounts_by_code(
            connection, institution_id, [spec.code for spec in specs]
        )
    return [found[spec.code] for spec in specs]


async def lock(connection: AsyncConnection, institution_id: UUID) -> None:
    """Take the institution's ledger lock for the rest of the caller's transaction, so that what it
    reads of balances stays true until it commits (e.g. a payout checked against the floor). It is
    the lock every ledger write takes first, so taking it early keeps the lock order; the write
    then finds it held and does not ask for it again."""
    await repo.lock_head(connection, institution_id)


def locked_by_caller(connection: AsyncConnection, institution_id: UUID) -> None:
    """For a caller whose own statement locked the institution's head row (`LedgerHead`, FOR
    UPDATE) together with rows it must lock before it, saving the lock's round trip: the ledger
    takes its lock as held from then on, as after `lock`. The statement must lock the head after
    the caller's other rows (FOR UPDATE OF them first), and the ledger's reads come after it."""
    repo.head_locked(connection, institution_id)


async def balances_by_kind(
    connection: AsyncConnection, institution_id: UUID
) -> dict[AccountKind, int]:
    """Each kind's total balance as the kind reads it (all prepaid accounts together, say)."""
    return {
        **dict.fromkeys(AccountKind, 0),
        **await repo.totals_by_kind(connection, institution_id),
    }


async def credited_since(
    connection: AsyncConnection, institution_id: UUID, account_id: UUID, kind: str, since: datetime
) -> int:
    """What entries of `kind` posted since `since` credited to the account, e.g. the lessons
    released today into releasable, which the T+1 rule does not let leave yet."""
    return await repo.credited_since(connection, institution_id, account_id, kind, since)


async def balances_by_kind_of(
    connection: AsyncConnection,
    institution_ids: Sequence[UUID],
    as_of: datetime | None = None,
) -> dict[UUID, dict[str, int]]:
    """`balances_by_kind` of many institutions in one query: as they stand, or as they stood at
    `as_of`, replayed from the journal (as `balances_as_of` does for one). Each institution's
    totals are keyed by the kind's plain string and a kind without an account is absent (read it
    with `.get(kind.value, 0)`): an enum member hashes in Python, and a page reads thousands."""
    found = await repo.totals_by_kind_of(connection, institution_ids, as_of)
    return {institution_id: found.get(institution_id, {}) for institution_id in institution_ids}


async def credited_to_kind_since(
    connection: AsyncConnection,
    institution_ids: Sequence[UUID],
    account_kind: AccountKind,
    entry_kind: str,
    since: datetime,
    until: datetime | None = None,
) -> dict[UUID, int]:
    """`credited_since` of many institutions at once, by the kind of account credited, optionally
    up to `until`."""
    return await repo.credited_to_kind_since(
        connection, institution_ids, account_kind, entry_kind, since, until
    )


async def accounts(connection: AsyncConnection, institution_id: UUID) -> dict[UUID, Account]:
    """Current balances, maintained with every posting: one row read per account."""
    return await repo.accounts_by_id(connection, institution_id)


async def balances_as_of(
    connection: AsyncConnection, institution_id: UUID, moment: datetime
) -> dict[UUID, int]:
    """Raw balances as they stood at `moment`, replayed from the journal; accounts with no posting
    by then are absent (their balance was zero)."""
    return await repo.journal_sums(connection, institution_id, posted_until=moment)


# --- posting ------------------------------------------------------------------------------------


async def post(connection: AsyncConnection, institution_id: UUID, draft: EntryDraft) -> PostedEntry:
    """Post one entry, or raise why not."""
    [result] = await post_many(connection, institution_id, [draft])
    if isinstance(result, LedgerError):
        raise result
    return result


async def post_many(
    connection: AsyncConnection, institution_id: UUID, drafts: Sequence[EntryDraft]
) -> list[Result]:
    """Post entries of one institution in order, each accepted or refused on its own: a refused
    entry writes nothing and does not stop the others. One lock, one round of inserts."""
    if len(drafts) > MAX_ENTRIES_PER_CALL:
        raise InvalidEntry(f"at most {MAX_ENTRIES_PER_CALL} entries per call, got {len(drafts)}")
    await repo.lock_head(connection, institution_id)
    return await _post_locked(connection, institution_id, drafts)


def _validate(institution_id: UUID, draft: EntryDraft) -> str:
    """Check the draft's shape and amounts; return its content hash."""
    key = draft.idempotency_key
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
        raise InvalidEntry(f"idempotency_key must be 1 to {MAX_KEY_LENGTH} characters")
    if not isinstance(draft.kind, str) or not 0 < len(draft.kind) <= 40:
        raise InvalidEntry("kind must be 1 to 40 characters")
    if draft.memo is not None and (not isinstance(draft.memo, str) or len(draft.memo) > 500):
        raise InvalidEntry("memo must be at most 500 characters")
    if not 2 <= len(draft.postings) <= MAX_POSTINGS_PER_ENTRY:
        raise InvalidEntry(
            f"an entry has 2 to {MAX_POSTINGS_PER_ENTRY} postings, got {len(draft.postings)}"
        )
    for posting in draft.postings:
        if not is_fen(posting.amount_fen) or posting.amount_fen == 0:
            raise InvalidAmount(
                f"amount_fen must be a non-zero whole number of fen within ±{INT64_MAX}, "
                f"got {posting.amount_fen!r}",
                account_id=str(posting.account_id),
            )
    total = sum(posting.amount_fen for posting in draft.postings)
    if total != 0:
        raise UnbalancedEntry(f"postings sum to {total} fen, not 0", imbalance_fen=total)
    return content_hash(institution_id, key, draft.kind, draft.memo, draft.postings)


async def _unknown_account_error(
    connection: AsyncConnection, institution_id: UUID, missing: set[UUID]
) -> LedgerError:
    elsewhere = await repo.institutions_of_accounts(connection, missing)
    if elsewhere:
        return CrossInstitutionEntry(
            f"account {next(iter(elsewhere))} belongs to another institution; an entry stays "
            f"within institution {institution_id}"
        )
    return UnknownAccount(
        f"no account {sorted(map(str, missing))[0]} in institution {institution_id}"
    )


async def _post_locked(
    connection: AsyncConnection,
    institution_id: UUID,
    drafts: Sequence[EntryDraft],
) -> list[Result]:
    """The write path, run with the institution's ledger lock held: validate, deduplicate by key,
    apply limits in order against balances read under the lock, then write journal and balances:
    on PostgreSQL one statement to read and one to write, whatever the batch size."""
    plan = await _plan(connection, institution_id, drafts, None, utcnow())
    if plan.write is not None:
        await repo.write_journals(connection, [plan.write], plan.now)
    return await _finish(connection, plan)


async def post_many_read(
    connection: AsyncConnection,
    batches: Mapping[UUID, tuple[Sequence[EntryDraft], repo.LockedRead]],
) -> dict[UUID, list[Result]]:
    """`post_many` of several institutions at once (a group commit across institutions on one
    database: never where the deployment is sharded by institution), each with what its caller
    read under its ledger lock (`read_locked`: the tip, the drafts' keys and every account they
    name): their locks taken in id order if not held yet, then one write for them all."""
    await repo.lock_heads(connection, batches)
    now = utcnow()  # one moment for the whole write: every entry is posted, and chained, at it
    plans = [
        await _plan(connection, institution_id, drafts, read, now)
        for institution_id, (drafts, read) in batches.items()
    ]
    writes = [plan.write for plan in plans if plan.write is not None]
    if writes:
        await repo.write_journals(connection, writes, plans[0].now)
    return {plan.institution_id: await _finish(connection, plan) for plan in plans}


async def read_locked(
    connection: AsyncConnection, wanted: Mapping[UUID, tuple[Sequence[str], Sequence[AccountSpec]]]
) -> dict[UUID, tuple[repo.LockedRead, list[Account] | None]]:
    """For callers that decide what to post by what was posted before, across institutions: each
    institution's ledger lock (in id order), then in one read the tip, which of its keys are
    posted, and its accounts `specs` in order (None when one is not open yet: its caller takes
    the path of one institution, which opens it)."""
    await repo.lock_heads(connection, wanted)
    reads = await repo.tips_keys_and_accounts_of(
        connection,
        {i: (keys, [spec.code for spec in specs]) for i, (keys, specs) in wanted.items()},
    )
    found: dict[UUID, tuple[repo.LockedRead, list[Account] | None]] = {}
    for institution_id, (_, specs) in wanted.items():
        read = reads[institution_id]
        by_code = {account.code: account for account in read.accounts.values()}
        opened = [by_code.get(spec.code) for spec in specs]
        found[institution_id] = (
            read,
            None if None in opened or read.tip is None else cast(list[Account], opened),
        )
    return found


@dataclass(slots=True)
class _Plan:
    """What a post decided under the lock, before writing: each draft's result where known, the
    journal write, and the replays to load."""

    institution_id: UUID
    now: datetime
    results: list[Result | None]
    write: repo.JournalWrite | None
    replay_of_seq: dict[int, int]
    replay_of_index: dict[int, int]


async def _plan(
    connection: AsyncConnection,
    institution_id: UUID,
    drafts: Sequence[EntryDraft],
    read: repo.LockedRead | None,
    now: datetime,
) -> _Plan:
    results: list[Result | None] = [None] * len(drafts)
    hashes: dict[int, str] = {}
    for index, draft in enumerate(drafts):
        try:
            hashes[index] = _validate(institution_id, draft)
        except LedgerError as error:
            results[index] = error

    # One read under the lock: the chain's tip, the keys, and the accounts of every valid draft (a
    # replay's too, a few rows more, rather than a second round trip once the replays are known).
    if read is None:
        keys = list({drafts[i].idempotency_key for i in hashes})
        account_ids = {p.account_id for i in hashes for p in drafts[i].postings}
        read = (
            await repo.tip_keys_and_accounts(connection, institution_id, keys, account_ids)
            if hashes
            else repo.LockedRead(None, {}, {})
        )
    posted, known = read.posted, read.accounts
    # A key already in the journal, or earlier in this batch, is a replay when the content is the
    # same and a misuse when it is not.
    replay_of_seq: dict[int, int] = {}
    replay_of_index: dict[int, int] = {}
    first_with_key: dict[str, int] = {}
    for index, digest in list(hashes.items()):
        key = drafts[index].idempotency_key
        if key in posted:
            earlier_digest = posted[key][1]
            replay_of_seq[index] = posted[key][0]
        elif key in first_with_key:
            earlier_digest = hashes[first_with_key[key]]
            replay_of_index[index] = first_with_key[key]
        else:
            first_with_key[key] = index
            continue
        del hashes[index]
        if earlier_digest != digest:
            replay_of_seq.pop(index, None)
            replay_of_index.pop(index, None)
            results[index] = IdempotencyKeyReused(
                f"entry {key!r} was posted before with different content"
            )

    missing = {p.account_id for i in hashes for p in drafts[i].postings} - known.keys()
    balances = {account_id: account.balance_fen for account_id, account in known.items()}
    last_seq_of: dict[UUID, int] = {}  # each changed account's last entry in this batch
    # Who moves the money, and from where: the audit trail's money side, on the entry itself.
    actor = current_actor.get()
    actor_role, actor_id = (actor.role, actor.id) if actor is not None else (None, None)
    address = client_address.get()
    last_seq, last_hash = read.tip if read.tip is not None else (0, GENESIS_HASH)
    entry_rows: list[dict] = []
    posting_rows: list[dict] = []

    for index, digest in hashes.items():
        draft = drafts[index]
        unknown = {p.account_id for p in draft.postings} & missing
        if unknown:
            results[index] = await _unknown_account_error(connection, institution_id, unknown)
            continue
        after: dict[UUID, int] = {}
        for posting in draft.postings:
            after[posting.account_id] = (
                after.get(posting.account_id, balances[posting.account_id]) + posting.amount_fen
            )
        refusal = _limit_refusal(known, balances, after)
        if refusal is not None:
            results[index] = refusal
            continue
        balances.update(after)
        prev_hash = last_hash
        last_seq += 1
        last_seq_of.update(dict.fromkeys(after, last_seq))
        last_hash = chain_hash(prev_hash, last_seq, now, digest, actor_role, actor_id, address)
        entry_rows.append(
            {
                "institution_id": institution_id,
                "seq": last_seq,
                "idempotency_key": draft.idempotency_key,
                "kind": draft.kind,
                "memo": draft.memo,
                "posted_at": now,
                "posting_count": len(draft.postings),
                "content_hash": digest,
                "prev_hash": prev_hash,
                "hash": last_hash,
                "actor_role": actor_role,
                "actor_id": actor_id,
                "address": address,
            }
        )
        posting_rows.extend(
            {
                "institution_id": institution_id,
                "entry_seq": last_seq,
                "line_no": line,
                "account_id": p.account_id,
                "amount_fen": p.amount_fen,
            }
            for line, p in enumerate(draft.postings)
        )
        results[index] = PostedEntry(
            institution_id=institution_id,
            seq=last_seq,
            idempotency_key=draft.idempotency_key,
            kind=draft.kind,
            memo=draft.memo,
            posted_at=now,
            postings=draft.postings,
            hash=last_hash,
        )

    write = (
        repo.JournalWrite(
            institution_id,
            entry_rows,
            posting_rows,
            {account: (balances[account], last_seq_of[account]) for account in sorted(last_seq_of)},
        )
        if entry_rows
        else None
    )
    return _Plan(institution_id, now, results, write, replay_of_seq, replay_of_index)


async def _finish(connection: AsyncConnection, plan: _Plan) -> list[Result]:
    """The results once the plan's journal is written: the replays loaded."""
    results = plan.results
    if plan.write is not None:
        LEDGER_ENTRIES.inc(len(plan.write.entry_rows))
    if plan.replay_of_seq:
        loaded = await repo.load_entries(
            connection, plan.institution_id, list(plan.replay_of_seq.values())
        )
        for index, seq in plan.replay_of_seq.items():
            results[index] = loaded[seq]
    for index, first in plan.replay_of_index.items():
        outcome = results[first]
        results[index] = (
            replace(outcome, replayed=True) if isinstance(outcome, PostedEntry) else outcome
        )
    return results  # type: ignore[return-value]


def _limit_refusal(
    known: dict[UUID, Account], balances: dict[UUID, int], after: dict[UUID, int]
) -> LedgerError | None:
    for account_id, balance in after.items():
        account = known[account_id]
        if not is_fen(balance):
            return BalanceOutOfRange(f"account {account.code} would leave the BIGINT range")
        limit = account.lower_limit_fen
        if limit is not None and balance * account.normal < limit:
            held = balances[account_id] * account.normal
            return InsufficientBalance(
                f"account {account.code} holds {held} fen and may not go below {limit} fen",
                account_id=str(account_id),
                account_code=account.code,
                requested_balance_fen=balance * account.normal,
                lower_limit_fen=limit,
            )
    return None


# --- two-phase transfers ------------------------------------------------------------------------


async def reserve(
    connection: AsyncConnection,
    institution_id: UUID,
    *,
    idempotency_key: str,
    kind: str,
    source: UUID,
    transit: UUID,
    settle: UUID,
    amount_fen: int,
    memo: str | None = None,
) -> Transfer:
    """Phase one: debit `source` and credit `transit` (e.g. releasable to payout in transit).
    Phase two, once, either posts it (debit transit, credit `settle`, e.g. escrow cash) or voids it
    (debit transit, credit source). Reserving the same key again returns the same transfer."""
    draft = EntryDraft.transfer(idempotency_key, kind, source, transit, amount_fen, memo)
    await repo.lock_head(connection, institution_id)
    [result] = await _post_locked(connection, institution_id, [draft])
    if isinstance(result, LedgerError):
        raise result
    if result.replayed:
        existing = await repo.transfer_by_reserve_seq(connection, institution_id, result.seq)
        if existing is None:
            raise IdempotencyKeyReused(
                f"entry {idempotency_key!r} was posted, but not as a transfer"
            )
        return existing
    transfer = Transfer(
        institution_id=institution_id,
        id=uuid.uuid4(),
        source_account_id=source,
        transit_account_id=transit,
        settle_account_id=settle,
        amount_fen=amount_fen,
        status=TransferStatus.pending,
        reserve_seq=result.seq,
        resolve_seq=None,
    )
    await repo.insert_transfer(
        connection,
        {
            "institution_id": institution_id,
            "id": transfer.id,
            "source_account_id": source,
            "transit_account_id": transit,
            "settle_account_id": settle,
            "amount_fen": amount_fen,
            "status": TransferStatus.pending,
            "reserve_seq": result.seq,
            "resolve_seq": None,
            "created_at": result.posted_at,
            "resolved_at": None,
        },
    )
    return transfer


async def post_transfer(
    connection: AsyncConnection,
    institution_id: UUID,
    transfer_id: UUID,
    kind: str = "transfer_posted",
) -> Transfer:
    return await _resolve(connection, institution_id, transfer_id, TransferStatus.posted, kind)


async def void_transfer(
    connection: AsyncConnection,
    institution_id: UUID,
    transfer_id: UUID,
    kind: str = "transfer_voided",
) -> Transfer:
    return await _resolve(connection, institution_id, transfer_id, TransferStatus.voided, kind)


async def transfer(
    connection: AsyncConnection, institution_id: UUID, transfer_id: UUID
) -> Transfer:
    found = await repo.transfer_by_id(connection, institution_id, transfer_id)
    if found is None:
        raise TransferNotFound(f"no transfer {transfer_id} in institution {institution_id}")
    return found


async def _resolve(
    connection: AsyncConnection,
    institution_id: UUID,
    transfer_id: UUID,
    outcome: TransferStatus,
    kind: str,
) -> Transfer:
    """Resolve a pending transfer at most once. The ledger lock makes read-check-write atomic; asking
    for the outcome it already has is a replay, asking for the other one is refused."""
    await repo.lock_head(connection, institution_id)
    transfer = await repo.transfer_by_id(connection, institution_id, transfer_id)
    if transfer is None:
        raise TransferNotFound(f"no transfer {transfer_id} in institution {institution_id}")
    if transfer.status is outcome:
        return replace(transfer, replayed=True)
    if transfer.status is not TransferStatus.pending:
        raise TransferAlreadyResolved(
            f"transfer {transfer_id} is already {transfer.status}", status=transfer.status
        )
    credit = (
        transfer.settle_account_id
        if outcome is TransferStatus.posted
        else transfer.source_account_id
    )
    draft = EntryDraft.transfer(
        _resolution_key(transfer_id, outcome),
        kind,
        transfer.transit_account_id,
        credit,
        transfer.amount_fen,
    )
    [result] = await _post_locked(connection, institution_id, [draft])
    if isinstance(result, LedgerError):
        raise result
    await repo.resolve_transfer(
        connection, institution_id, transfer_id, outcome, result.seq, result.posted_at
    )
    return replace(transfer, status=outcome, resolve_seq=result.seq)


# --- checkpoints --------------------------------------------------------------------------------


async def checkpoint(connection: AsyncConnection, as_of: datetime) -> int:
    """Publish every institution's head (seq and hash) as its checkpoint of `as_of`'s day (Asia/
    Shanghai), once per institution and day: running again the same day writes nothing. Returns how
    many checkpoints were written."""
    return await repo.checkpoint_heads(connection, local_date(as_of), as_of)


async def checkpoints(connection: AsyncConnection, institution_id: UUID) -> list[Checkpoint]:
    """An institution's published checkpoints, oldest first: what a regulator keeps a copy of."""
    return await repo.checkpoints_of(connection, institution_id)


# --- verification -------------------------------------------------------------------------------


async def institutions(connection: AsyncConnection) -> list[UUID]:
    """Every institution that has a ledger."""
    return await repo.institution_ids(connection)


async def entry_hashes(
    connection: AsyncConnection, institution_id: UUID, seqs: Sequence[int]
) -> dict[int, str]:
    """The chained hashes of the entries `seqs` (entry 0, the empty journal, is `GENESIS_HASH`)."""
    found = await repo.entry_hashes(connection, institution_id, [seq for seq in seqs if seq])
    return {**({0: GENESIS_HASH} if 0 in seqs else {}), **found}


async def verify(connection: AsyncConnection, institution_id: UUID) -> VerifyReport:
    """Check an institution's ledger against its journal and report the first thing found wrong:

    1. the journal: walked from its first entry, every digest and link recomputed, each entry a
       checkpoint names compared with it, and the head on the last entry; a checkpoint beyond the
       journal's end means entries were removed from its tail;
    2. the maintained balances, equal to the journal replayed;
    3. each transfer's amount, accounts and state, equal to its reserve and resolve entries;
    4. each enrollment's counters: its prepaid account holds paid - released - refunded.

    Give it a connection of its own: on PostgreSQL it reads in one snapshot (REPEATABLE READ), so
    that writes going on meanwhile are not taken for tampering; on SQLite the transaction holds the
    database's lock."""
    if connection.dialect.name == "postgresql" and not connection.in_transaction():
        await connection.execution_options(isolation_level="REPEATABLE READ")
    head = await repo.read_head(connection, institution_id)
    if head is None:
        raise LedgerNotFound(f"institution {institution_id} has no ledger")
    head_seq, head_hash = head
    published: dict[int, list[Checkpoint]] = {}
    for point in await repo.checkpoints_of(connection, institution_id):
        published.setdefault(point.seq, []).append(point)
    transfers = await repo.transfers_of(connection, institution_id)
    kept_seqs = {t.reserve_seq for t in transfers} | {
        t.resolve_seq for t in transfers if t.resolve_seq
    }
    kept: dict[int, list[Posting]] = {}  # the postings of the entries transfers name
    resolutions: dict[str, int] = {}  # "transfer:<id>:<outcome>" keys found, with their seq
    expected_seq, expected_prev = 1, GENESIS_HASH

    def report(
        problem: str | None = None, bad_seq: int | None = None, **extra: Any
    ) -> VerifyReport:
        return VerifyReport(
            institution_id=institution_id,
            intact=problem is None,
            entries_checked=expected_seq - 1,
            verified_through_seq=expected_seq - 1,
            head_seq=head_seq,
            first_bad_seq=bad_seq,
            problem=problem,
            **extra,
        )

    for point in published.get(0, ()):
        if point.hash != GENESIS_HASH:
            return report(
                f"the checkpoint of {point.day} names an empty journal with another hash",
                checkpoint_day=point.day,
            )
    async with aclosing(_journal(connection, institution_id)) as journal:
        async for entry, lines in journal:
            if entry.seq != expected_seq:
                return report(f"entry {expected_seq} is missing", expected_seq)
            postings = [Posting(line.account_id, line.amount_fen) for line in lines]
            problem = _entry_problem(institution_id, entry, lines, postings, expected_prev)
            if problem is not None:
                return report(f"entry {expected_seq} was altered: {problem}", expected_seq)
            for point in published.get(entry.seq, ()):
                if point.hash != entry.hash:
                    return report(
                        f"entry {entry.seq} differs from the checkpoint of {point.day}: the "
                        "journal up to it was rewritten",
                        entry.seq,
                        checkpoint_day=point.day,
                    )
            if entry.seq in kept_seqs:
                kept[entry.seq] = postings
            if entry.idempotency_key.startswith(_RESOLUTION_PREFIX):
                resolutions[entry.idempotency_key] = entry.seq
            expected_seq, expected_prev = expected_seq + 1, entry.hash
    last_seq = expected_seq - 1
    if head_seq > last_seq:
        return report(_missing(expected_seq, head_seq), expected_seq)
    if head_seq < last_seq or head_hash != expected_prev:
        return report(f"the head (entry {head_seq}) is not on the journal's last entry {last_seq}")
    beyond = [point for seq, points in published.items() if seq > last_seq for point in points]
    if beyond:
        point = min(beyond, key=lambda p: p.day)
        return report(
            f"{_missing(expected_seq, point.seq)}: the checkpoint of {point.day} "
            f"recorded entry {point.seq}, the journal ends at entry {last_seq}",
            expected_seq,
            checkpoint_day=point.day,
        )

    maintained = await repo.accounts_by_id(connection, institution_id)
    replayed = await repo.journal_sums(connection, institution_id)
    mismatches = {
        account_id: (account.balance_fen, replayed.get(account_id, 0))
        for account_id, account in maintained.items()
        if account.balance_fen != replayed.get(account_id, 0)
    }
    if mismatches:
        return report(
            f"{len(mismatches)} account balances differ from the journal",
            balance_mismatches=mismatches,
        )

    for transfer in transfers:
        problem = _transfer_problem(transfer, kept, resolutions)
        if problem is not None:
            return report(f"transfer {transfer.id} {problem}", transfer_id=transfer.id)

    prepaid = {
        account.code: account.normal_balance_fen
        for account in maintained.values()
        if account.kind is AccountKind.prepaid
    }
    for row in await repo.enrollment_counters(connection, institution_id):
        unconsumed = row.paid_fen - row.confirmed_fen - row.refunded_fen
        held = prepaid.get(prepaid_spec(row.id).code, 0)
        if held != unconsumed:
            return report(
                f"enrollment {row.id} says paid {row.paid_fen} - released {row.confirmed_fen} - "
                f"refunded {row.refunded_fen} = {unconsumed} fen, its prepaid account holds "
                f"{held} fen",
                enrollment_id=row.id,
            )
    return report()


def _missing(first: int, last: int) -> str:
    return (
        f"entry {first} is missing" if first == last else f"entries {first} to {last} are missing"
    )


async def _journal(
    connection: AsyncConnection, institution_id: UUID
) -> AsyncGenerator[tuple[Any, list[Any]]]:
    """Each journal row with its posting rows, in seq order."""
    stream = await repo.stream_journal(connection, institution_id)
    try:
        entry, lines = None, []
        async for row in stream:
            if entry is not None and row.seq != entry.seq:
                yield entry, lines
                lines = []
            entry = row
            if row.line_no is not None:
                lines.append(row)
        if entry is not None:
            yield entry, lines
    finally:
        await stream.close()


def _entry_problem(
    institution_id: UUID, entry: Any, lines: list[Any], postings: list[Posting], expected_prev: str
) -> str | None:
    digest = content_hash(institution_id, entry.idempotency_key, entry.kind, entry.memo, postings)
    if (
        digest != entry.content_hash
        or len(lines) != entry.posting_count
        or [line.line_no for line in lines] != list(range(len(lines)))
    ):
        return "its content no longer matches its digest"
    if entry.prev_hash != expected_prev or entry.hash != chain_hash(
        expected_prev,
        entry.seq,
        entry.posted_at,
        digest,
        entry.actor_role,
        entry.actor_id,
        entry.address,
    ):
        return "its link in the chain is broken"
    return None


_RESOLUTION_PREFIX = "transfer:"


def _resolution_key(transfer_id: UUID, outcome: TransferStatus) -> str:
    """The key of the entry that resolves a transfer: one per transfer and outcome."""
    return f"{_RESOLUTION_PREFIX}{transfer_id}:{outcome}"


def _transfer_problem(
    transfer: Transfer,
    kept: dict[int, list[Posting]],
    resolutions: dict[str, int],
) -> str | None:
    """What a transfer's row says that its entries do not: its reserve entry moved its amount from
    source to transit, and its state is that of the one resolution entry it has, if any."""
    amount = transfer.amount_fen
    if kept.get(transfer.reserve_seq) != [
        Posting(transfer.source_account_id, amount),
        Posting(transfer.transit_account_id, -amount),
    ]:
        return f"of {amount} fen does not match its reserve entry {transfer.reserve_seq}"
    found = {
        outcome: resolutions[key]
        for outcome in (TransferStatus.posted, TransferStatus.voided)
        if (key := _resolution_key(transfer.id, outcome)) in resolutions
    }
    if transfer.status is TransferStatus.pending:
        if found:
            outcome, seq = next(iter(found.items()))
            return f"is pending, but entry {seq} {outcome} it"
        return None
    if found.keys() != {transfer.status} or found[transfer.status] != transfer.resolve_seq:
        return f"is {transfer.status}, but entry {transfer.resolve_seq} is not its resolution"
    credit = (
        transfer.settle_account_id
        if transfer.status is TransferStatus.posted
        else transfer.source_account_id
    )
    if kept[transfer.resolve_seq] != [
        Posting(transfer.transit_account_id, amount),
        Posting(credit, -amount),
    ]:
        return f"of {amount} fen does not match its resolution entry {transfer.resolve_seq}"
    return None
