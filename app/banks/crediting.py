"""Crediting the payment messages the inbox stored and acknowledged (status `stored`).

Each process runs a worker, woken after each of its group commits and every POLL_SECONDS anyway
(for messages another process stored, or one that died between storing and crediting); while a
pass finds work, the next follows at once. The messages are taken with FOR UPDATE SKIP LOCKED and
applied only while still `stored`, and the transaction that applies them marks them `processed`:
two workers, or a worker and the `process_inbox` job, never apply one twice. What applying means
is the inbox's, unchanged (`apply_payment_messages` does what `apply_notification` does to each
message, in fewer statements): only its moment moved.

How many institutions a transaction spans is the deployment's GROUP_COMMIT_SCOPE:
- `database` (one database holds every institution): a transaction takes the oldest stored
  messages whatever their institutions (up to WIDE_GROUP_SIZE), locking them as it reads them, and
  credits them in one round of statements: the institutions, their enrollments and their ledger
  heads each locked in one statement in institution id order, one ledger read and one journal
  write for them all. With a few hundred institutions sharing the load, this is what lets
  crediting keep up with the replies.
- `institution` (sharded by institution, Citus): each institution's messages are applied in
  transactions of their own (up to GROUP_SIZE each), CONCURRENT_GROUPS at once.

A group that fails is rolled back and applied again one institution per transaction, and a failing
institution's one message per transaction, so one bad message (say, for an account nobody holds
yet) is kept `failed`, as a synchronous failure would be, and the others are credited;
`process_inbox` tries it again later.

Backlog bound: when crediting falls behind (a pass finds as many messages as it may take),
replies wait for it to catch up, at most BEHIND_WAIT_SECONDS; see that constant.

With INBOX_APPLY=inline a request credits its own message before its reply instead, on the same
path (tests, and a small single process that wants the old behaviour).
"""

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import partial
from uuid import UUID

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.banks.config import BankSetup, cached_bank
from app.banks.group_commit import InboxWriter
from app.banks.inbox import (
    MAX_DETAIL,
    Pending,
    Source,
    StoreOutcome,
    StoreResult,
    apply_payment_messages,
    retry_failed_messages,
)
from app.banks.protocol import InboundRequest, Notification
from app.config import GroupCommitScope, InboxApply
from app.db.unit import Database
from app.kit.clock import as_utc, utcnow
from app.models import BankMessage
from app.models.bank_message import MessageStatus

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2  # how soon a message stored by another process (or before a crash) is credited
PASS_SIZE = 1000  # stored messages taken per pass (`institution` scope)
GROUP_SIZE = 100  # messages of one institution applied in one transaction (`institution` scope)
# Messages of any institutions applied in one transaction (`database` scope): with a few hundred
# institutions sharing the load, a pass credits its messages in one round of statements.
WIDE_GROUP_SIZE = 500
CONCURRENT_GROUPS = 4  # transactions of a pass at once (each holds a pooled connection)
# The backlog bound: a pass that finds as many stored messages as it may take means crediting has
# fallen behind the replies. Until a pass finds fewer, each reply waits (at most this long) for it
# to catch up: a bank's bounded number of connections then slows its sending to crediting's pace,
# so the delay from reply to credit stays bounded rather than growing with the backlog. The
# message is stored either way, so a reply after the wait is as true as one before.
BEHIND_WAIT_SECONDS = 5.0


class CreditedElsewhere(Exception):
    """A message of the group was applied by another worker meanwhile (SQLite takes no row locks):
    the group rolls back and is applied again one by one, skipping it."""


async def credit_stored(db: Database) -> int:
    """One pass over the oldest stored messages. How many were applied, refused or kept failed
    (0: none left, or all taken by others).

    Where the deployment is not sharded (GROUP_COMMIT_SCOPE=database), a transaction takes up to
    WIDE_GROUP_SIZE of them whatever their institutions, locked as it reads them (FOR UPDATE SKIP
    LOCKED: two workers take different ones) and applies them together. Sharded by institution
    (`institution`), each institution's are applied in transactions of their own."""
    if db.settings.group_commit_scope is GroupCommitScope.database:
        return await _credit_oldest_together(db)
    pending = await db.run(_oldest_stored)
    groups: dict[str, list[UUID]] = defaultdict(list)
    for message_id, (_, account_no) in pending.items():
        groups[account_no].append(message_id)
    banks = await _setups(db, {slug for slug, _ in pending.values()})
    # Institutions apart never wait for each other: their transactions overlap, so that a pass
    # is not a string of round trips one after the other. SQLite has one writer at a time.
    running = asyncio.Semaphore(1 if db.engine.dialect.name == "sqlite" else CONCURRENT_GROUPS)

    async def credit(ids: list[UUID]) -> int:
        async with running:
            return await credit_group(db, [ids], banks)

    chunks = [
        ids[start : start + GROUP_SIZE]
        for ids in groups.values()
        for start in range(0, len(ids), GROUP_SIZE)
    ]
    return sum(await asyncio.gather(*(credit(chunk) for chunk in chunks)))


def full_pass(db: Database) -> int:
    """As many stored messages as one pass may take: a pass that finds them all is behind."""
    if db.settings.group_commit_scope is GroupCommitScope.institution:
        return PASS_SIZE
    return WIDE_GROUP_SIZE * (1 if db.engine.dialect.name == "sqlite" else CONCURRENT_GROUPS)


async def _credit_oldest_together(db: Database) -> int:
    """The oldest stored messages, in a transaction of up to WIDE_GROUP_SIZE spanning
    institutions; when that one was full (a backlog), CONCURRENT_GROUPS - 1 more at once (none
    on SQLite, which has one writer)."""
    handled = await _credit_wide_group(db)
    if handled < WIDE_GROUP_SIZE or db.engine.dialect.name == "sqlite":
        return handled
    more = await asyncio.gather(*(_credit_wide_group(db) for _ in range(CONCURRENT_GROUPS - 1)))
    return handled + sum(more)


async def _credit_wide_group(db: Database) -> int:
    """One transaction: the oldest stored messages not locked by another, locked, applied
    together. If it fails, each institution's messages are applied again in a transaction of
    their own (and then each message: `credit_group`)."""
    claimed: dict[str, list[UUID]] = {}
    try:
        return await db.run(partial(_apply_oldest, db=db, claimed=claimed))
    except Exception:
        if not claimed:
            raise
        log.warning(
            "a group of %d stored bank messages failed; applying each institution's apart",
            sum(map(len, claimed.values())),
        )
    banks = await _setups(
        db, await db.run(partial(_slugs_of, ids=[i for ids in claimed.values() for i in ids]))
    )
    return sum([await credit_group(db, [ids], banks) for ids in claimed.values()])


async def _apply_oldest(session: AsyncSession, db: Database, claimed: dict[str, list[UUID]]) -> int:
    rows = (
        await session.execute(
            _CLAIM_COLUMNS.where(BankMessage.status == MessageStatus.stored)
            .order_by(BankMessage.received_at)
            .limit(WIDE_GROUP_SIZE)
            .with_for_update(skip_locked=True)
        )
    ).all()
    claimed.clear()
    for row in rows:
        claimed.setdefault(row.account_no or "", []).append(row.id)
    if not rows:
        return 0
    banks = {slug: await cached_bank(db, slug, session) for slug in {row.bank_slug for row in rows}}
    return await _apply_rows(session, rows, banks)


async def credit_group(
    db: Database, groups: Sequence[Sequence[UUID]], banks: Mapping[str, BankSetup] | None = None
) -> int:
    """Apply these stored messages (each of `groups` one institution's) in one transaction; if
    that fails, each institution's in its own, then each message in its own, keeping one that
    still fails as `failed`."""
    ids = [message_id for group in groups for message_id in group]
    if banks is None:
        banks = await _setups(db, await db.run(partial(_slugs_of, ids=ids)))
    try:
        return await db.run(partial(_apply_stored, ids=ids, banks=banks))
    except Exception as error:
        if len(groups) > 1:
            return sum([await credit_group(db, [group], banks) for group in groups])
        if len(ids) > 1:
            return sum([await credit_group(db, [[one]], banks) for one in ids])
        if not isinstance(error, CreditedElsewhere):
            log.exception("stored bank message %s could not be applied", ids[0])
            await db.run(partial(_mark_failed, message_id=ids[0], why=repr(error)))
        return 1


async def _oldest_stored(session: AsyncSession) -> dict[UUID, tuple[str, str]]:
    rows = await session.execute(
        select(BankMessage.id, BankMessage.bank_slug, BankMessage.account_no)
        .where(BankMessage.status == MessageStatus.stored)
        .order_by(BankMessage.received_at)
        .limit(PASS_SIZE)
    )
    return {row.id: (row.bank_slug, row.account_no or "") for row in rows}


async def _slugs_of(session: AsyncSession, ids: Sequence[UUID]) -> set[str]:
    rows = await session.scalars(select(BankMessage.bank_slug).where(BankMessage.id.in_(ids)))
    return set(rows)


async def _setups(db: Database, slugs: Iterable[str]) -> dict[str, BankSetup]:
    return {slug: await cached_bank(db, slug) for slug in slugs}


# A stored message as a pass reads it (what its adapter needs to read it again).
_Stored = Row[UUID, str, str | None, str, dict[str, str], bytes, datetime]
_CLAIM_COLUMNS = select(
    BankMessage.id,
    BankMessage.bank_slug,
    BankMessage.account_no,
    BankMessage.content_type,
    BankMessage.signature_headers,
    BankMessage.body,
    BankMessage.received_at,
)


async def _apply_stored(
    session: AsyncSession, ids: Sequence[UUID], banks: Mapping[str, BankSetup]
) -> int:
    rows = (
        await session.execute(
            _CLAIM_COLUMNS.where(
                BankMessage.id.in_(ids), BankMessage.status == MessageStatus.stored
            )
            .order_by(BankMessage.received_at, BankMessage.id)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return 0
    return await _apply_rows(session, rows, banks)


async def _apply_rows(
    session: AsyncSession, rows: Sequence["_Stored"], banks: Mapping[str, BankSetup]
) -> int:
    """Apply these stored messages, locked by the caller, and mark those applied `processed`."""
    messages = [_read(row, banks[row.bank_slug]) for row in rows]
    statuses = await apply_payment_messages(session, messages)
    applied = [
        source.stored_id
        for (source, _), status in zip(messages, statuses, strict=True)
        if status is MessageStatus.processed
    ]
    if applied:
        marked = await session.execute(
            update(BankMessage)
            .where(BankMessage.id.in_(applied), BankMessage.status == MessageStatus.stored)
            .values(
                status=MessageStatus.processed,
                processed_at=utcnow(),
                attempts=BankMessage.attempts + 1,
            )
        )
        if marked.rowcount != len(applied):  # type: ignore[attr-defined]
            raise CreditedElsewhere()
    return len(rows)


def _read(row: "_Stored", bank: BankSetup) -> tuple[Source, Notification]:
    """A stored message read again by its bank's adapter, as when it arrived."""
    received_at = as_utc(row.received_at)
    request = InboundRequest(
        headers={"content-type": row.content_type, **row.signature_headers},
        body=row.body,
        received_at=received_at,
    )
    notification = bank.adapter.parse_notification(request)
    return Source(row.bank_slug, notification.message_id, row.id, received_at), notification


async def _mark_failed(session: AsyncSession, message_id: UUID, why: str) -> None:
    await session.execute(
        update(BankMessage)
        .where(BankMessage.id == message_id, BankMessage.status == MessageStatus.stored)
        .values(
            status=MessageStatus.failed,
            detail=why[:MAX_DETAIL],
            attempts=BankMessage.attempts + 1,
        )
    )


async def process_inbox(db: Database, as_of: datetime) -> int:
    """The `process_inbox` job: credit what is stored and not yet credited (a process that died
    between the reply and the credit left it), then apply again what failed."""
    handled = 0
    while credited := await credit_stored(db):
        handled += credited
    return handled + await retry_failed_messages(db)


class InboxRuntime:
    """This process's inbox: the group-commit writer and the crediting worker (the
    `DeferredInbox` that notify stores payment messages through)."""

    def __init__(self, db: Database, apply: InboxApply) -> None:
        self.db = db
        self.apply = apply
        self.writer = InboxWriter(db.engine, self._stored)
        self._wake = asyncio.Event()
        self._draining = asyncio.Lock()
        self._worker: asyncio.Task[None] | None = None
        # Clear while crediting is behind (the backlog bound, BEHIND_WAIT_SECONDS).
        self.caught_up = asyncio.Event()
        self.caught_up.set()

    def start(self) -> None:
        if self.apply is InboxApply.background:
            self._worker = asyncio.create_task(self._run(), name="inbox-crediting")

    async def close(self) -> None:
        await self.writer.close()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    async def store(self, pending: Pending) -> StoreOutcome:
        outcome = await self.writer.store(pending)
        if self.apply is InboxApply.inline and outcome.result is StoreResult.stored:
            assert outcome.stored_id is not None
            await credit_group(self.db, [[outcome.stored_id]])
        elif outcome.result is StoreResult.stored and not self.caught_up.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.caught_up.wait(), BEHIND_WAIT_SECONDS)
        return outcome

    async def drain(self) -> int:
        """Credit everything stored now (the worker's pass; tests wait on it)."""
        async with self._draining:
            handled = 0
            full = full_pass(self.db)
            try:
                while credited := await credit_stored(self.db):
                    handled += credited
                    if credited >= full:
                        self.caught_up.clear()
                    else:
                        self.caught_up.set()
            finally:
                self.caught_up.set()  # nothing left, or a failing pass: replies never wait on it
            return handled

    def _stored(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            self._wake.clear()
            try:
                await self.drain()
            except Exception:
                log.exception("crediting stored bank messages failed; trying again shortly")
