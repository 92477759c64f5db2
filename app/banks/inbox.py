"""The inbox: every message a bank sends us is verified on its raw bytes, stored, and only then
acknowledged with the bank's own success reply (STYLE rule 7).

- A message failing its signature (bad, missing, expired, or a nonce seen before) is stored raw as
  `rejected` with a security event, and answered with the bank's error reply and 401. Nothing in it
  is acted on.
- A verified message that cannot be read (bad syntax, an amount that is not exact fen) is stored raw
  as `malformed` and answered with the bank's error reply and 400.
- A verified, readable payment message (payments to one escrow account, which is this bank's) is
  stored `stored` by a group commit of the concurrent requests of this process
  (`app/banks/group_commit.py`), answered with the bank's success reply once that commit is
  durable, and credited right after by the inbox worker (`app/banks/crediting.py`), one
  transaction per institution. The bank's reply then means "stored", which is all it ever
  promised: the payment shows on the enrollment a moment after the reply.
- Any other verified, readable message (a result, a debit, payments to several accounts, or one
  about another bank's account) is inserted once per (bank, message id) with ON CONFLICT DO
  NOTHING, and its events are applied in the same transaction. A resend finds the row and gets the reply
  the first copy got, changing nothing. Of two copies arriving at once, the database makes the
  second insert wait for the first transaction and then do nothing, so the second is answered only
  after the first is durable.
- A bank speaks only for its own accounts and instructions (DOMAIN.md, "Bank side"): a message
  naming an escrow account held at another bank, or a result for an instruction sent through
  another bank, is applied not at all. It is stored as `refused` with a security event and a red
  alert for each institution concerned, and answered with the bank's error reply (400). A resend
  gets the same answer and raises nothing again.
- Money booked out of an escrow account that is none of our instructions (sent through this bank,
  of that account, not failed) raises a red alert pointing at the raw message.
- If applying the events fails, the transaction rolls back and the message is stored as `failed`
  in a transaction of its own, then acknowledged: it is durably recorded, and the `process_inbox`
  job applies it again later (so does the crediting worker with a stored message it cannot apply). Applying is idempotent (every effect has its own key).
"""

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Protocol
from uuid import UUID, uuid4

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.alerts.engine import evaluate_money, evaluate_money_locked
from app.alerts.service import raise_alert
from app.balances.service import profiles_of
from app.banks.config import BankSetup, cached_bank, load_bank
from app.banks.protocol import (
    BankEvent,
    DebitBooked,
    InboundRequest,
    InstructionResult,
    MalformedMessage,
    Notice,
    Notification,
    PaymentReceived,
    ReplyKind,
    ResultStatus,
    SignatureProblem,
    VerificationFailed,
    Verified,
)
from app.db.dialect import insert_for
from app.db.unit import Database
from app.instructions.outcomes import Applied, Outcome, apply_outcome
from app.kit.clock import utcnow
from app.kit.errors import Conflict, NotFound
from app.kit.money import yuan
from app.kit.pagination import PageRequest, paginate
from app.models import BankMessage, BankNonce, Institution, Instruction, SecurityEvent
from app.models.alert import AlertKind
from app.models.bank_message import MessageStatus
from app.models.institution import AlertLevel
from app.models.instruction import InstructionKind, InstructionStatus
from app.payments.service import (
    BankPayment,
    PaymentResult,
    credit_matching_payments,
    credit_payment,
)

log = logging.getLogger(__name__)

# Headers worth keeping with a stored message: those that carry or date the signature.
SIGNATURE_HEADERS = (
    "x-signature",
    "x-file-signature",
    "x-gm-appid",
    "x-gm-timestamp",
    "x-gm-nonce",
    "x-gm-signature",
)
MAX_DETAIL = 500
MAX_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class Received:
    """What the endpoint answers, and what happened (for logs and tests)."""

    reply: ReplyKind
    status: MessageStatus | None  # None for a duplicate of a message already stored
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    """A verified, readable payment message waiting for its group commit."""

    slug: str
    request: InboundRequest
    message_id: str
    events: int
    account_no: str  # the one escrow account its events name
    nonce: str | None
    nonce_ttl_seconds: int


class StoreResult(StrEnum):
    stored = "stored"  # inserted `stored`: credited right after
    duplicate = "duplicate"  # (bank, message id) was stored before: nothing new
    replayed = "replayed"  # its nonce was seen within its time to live
    # Its account is held at another bank: left to the synchronous path, which refuses it.
    foreign = "foreign"


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    result: StoreResult
    stored_id: UUID | None = None


class DeferredInbox(Protocol):
    """Where a payment message is stored to be credited right after (`crediting.InboxRuntime`)."""

    async def store(self, pending: Pending) -> StoreOutcome: ...


def deferred_account(notification: Notification) -> str | None:
    """The escrow account of a message that may be credited after its reply: payments (and
    notices) naming exactly one account, so that it is applied in one institution's transaction.
    None for anything else, which is applied before the reply as it always was: a result or a
    debit touches instructions and alerts whose order against other messages matters."""
    events = notification.events
    if not any(isinstance(event, PaymentReceived) for event in events):
        return None
    if not all(isinstance(event, PaymentReceived | Notice) for event in events):
        return None
    accounts = {event.account_no for event in events if event.account_no}
    return accounts.pop() if len(accounts) == 1 else None


async def receive(
    db: Database,
    slug: str,
    request: InboundRequest,
    remote_addr: str | None,
    deferred: DeferredInbox | None = None,
) -> tuple[BankSetup, Received]:
    """Verify, read and store the bank's message; what to answer. With `deferred`, a payment
    message is stored by a group commit and credited after the reply; without, everything is
    applied before it."""
    bank = await cached_bank(db, slug)
    adapter = bank.adapter
    try:
        verified = adapter.verify(bank.config, request)
    except VerificationFailed as failure:
        refused = failure
        await db.run(lambda session: reject(session, slug, request, refused, remote_addr))
        return bank, Received(ReplyKind.bad_signature, MessageStatus.rejected)
    try:
        notification = adapter.parse_notification(request)
    except MalformedMessage as problem:
        unreadable = problem.detail
        await db.run(
            lambda session: store_raw(
                session, slug, request, None, MessageStatus.malformed, unreadable
            )
        )
        return bank, Received(ReplyKind.malformed, MessageStatus.malformed)
    account = deferred_account(notification) if deferred is not None else None
    if deferred is not None and account is not None:
        pending = Pending(
            slug,
            request,
            notification.message_id,
            len(notification.events),
            account,
            verified.nonce,
            verified.nonce_ttl_seconds,
        )
        early = await _store_deferred(db, deferred, pending, remote_addr)
        if early is not None:
            return bank, early
    try:
        received = await db.run(
            lambda session: _record_and_apply(
                session, slug, request, verified, notification, remote_addr
            )
        )
    except Exception as error:  # any failure to apply: keep the message, retry it later
        log.exception("bank message %s/%s could not be applied", slug, notification.message_id)
        why = repr(error)
        stored = await db.run(
            lambda session: store_raw(
                session, slug, request, notification.message_id, MessageStatus.failed, why
            )
        )
        status = None if stored is None else MessageStatus.failed
        received = Received(ReplyKind.ok, status, notification.message_id)
    return bank, received


_REPLY_TO = {MessageStatus.processed: ReplyKind.ok, MessageStatus.refused: ReplyKind.refused}


async def _store_deferred(
    db: Database, deferred: DeferredInbox, pending: Pending, remote_addr: str | None
) -> Received | None:
    """Store a payment message by group commit; what to answer, or None when it is about an
    account of another bank (the synchronous path refuses it, with its security event)."""
    outcome = await deferred.store(pending)
    if outcome.result is StoreResult.stored:
        return Received(ReplyKind.ok, MessageStatus.stored, pending.message_id)
    if outcome.result is StoreResult.duplicate:
        return Received(ReplyKind.ok, None, pending.message_id)
    if outcome.result is StoreResult.replayed:
        failure = VerificationFailed(
            SignatureProblem.replayed,
            f"nonce {pending.nonce!r} was seen in the last {pending.nonce_ttl_seconds} seconds",
        )
        await db.run(
            lambda session: reject(session, pending.slug, pending.request, failure, remote_addr)
        )
        return Received(ReplyKind.bad_signature, MessageStatus.rejected, pending.message_id)
    return None


async def _record_and_apply(
    session: AsyncSession,
    slug: str,
    request: InboundRequest,
    verified: Verified,
    notification: Notification,
    remote_addr: str | None,
) -> Received:
    message_id = notification.message_id
    if verified.nonce is not None and not await claim_nonce(
        session, slug, verified.nonce, request.received_at, verified.nonce_ttl_seconds
    ):
        failure = VerificationFailed(
            SignatureProblem.replayed,
            f"nonce {verified.nonce!r} was seen in the last {verified.nonce_ttl_seconds} seconds",
        )
        await reject(session, slug, request, failure, remote_addr)
        return Received(ReplyKind.bad_signature, MessageStatus.rejected, message_id)
    stored_id = await store_raw(
        session,
        slug,
        request,
        message_id,
        MessageStatus.processed,
        None,
        events=len(notification.events),
    )
    if stored_id is None:
        # A resend: answered as the first copy was, with nothing applied or raised again.
        first = await session.scalar(
            select(BankMessage.status).where(
                BankMessage.bank_slug == slug, BankMessage.message_id == message_id
            )
        )
        reply = ReplyKind.refused if first == MessageStatus.refused else ReplyKind.ok
        return Received(reply, None, message_id)
    source = Source(slug, message_id, stored_id, request.received_at)
    status = await apply_notification(session, source, notification, remote_addr)
    return Received(_REPLY_TO[status], status, message_id)


async def claim_nonce(
    session: AsyncSession, slug: str, nonce: str, now: datetime, ttl_seconds: int
) -> bool:
    """Record the nonce; False when it was seen within the last `ttl_seconds` (a replay). A nonce
    older than that may be used again, so its row is reused rather than kept forever."""
    return await _claim_nonce(await session.connection(), slug, nonce, now, ttl_seconds)


async def _claim_nonce(
    connection: AsyncConnection, slug: str, nonce: str, now: datetime, ttl_seconds: int
) -> bool:
    claimed = await connection.execute(
        insert_for(connection, BankNonce.__table__)
        .values(bank_slug=slug, nonce=nonce, seen_at=now)
        .on_conflict_do_update(
            index_elements=["bank_slug", "nonce"],
            set_={"seen_at": now},
            where=BankNonce.__table__.c.seen_at < now - timedelta(seconds=ttl_seconds),
        )
        .returning(BankNonce.__table__.c.nonce)
    )
    return claimed.first() is not None


async def store_raw(
    session: AsyncSession,
    slug: str,
    request: InboundRequest,
    message_id: str | None,
    status: MessageStatus,
    detail: str | None,
    *,
    events: int = 0,
    endpoint: str = "notify",
) -> UUID | None:
    """Insert the raw message (a notification, or a statement file); its row's id, or None when
    (bank, message id) is stored already."""
    connection = await session.connection()
    now = utcnow()
    inserted = await connection.execute(
        insert_for(connection, BankMessage.__table__)
        .values(
            id=uuid4(),
            bank_slug=slug,
            endpoint=endpoint,
            message_id=message_id,
            verification="ok" if status is not MessageStatus.rejected else detail,
            status=status,
            content_type=request.headers.get("content-type", "")[:200],
            signature_headers=_signature_headers(request.headers),
            body=request.body,
            events=events,
            detail=None if detail is None else detail[:MAX_DETAIL],
            attempts=1 if status in (MessageStatus.processed, MessageStatus.failed) else 0,
            received_at=request.received_at,
            processed_at=now if status is MessageStatus.processed else None,
        )
        .on_conflict_do_nothing(index_elements=["bank_slug", "message_id"])
        .returning(BankMessage.__table__.c.id)
    )
    return inserted.scalar()


async def store_batch(connection: AsyncConnection, batch: Sequence[Pending]) -> list[StoreOutcome]:
    """Store the payment messages of one group commit, in one transaction of the caller's: one
    query for the banks holding their accounts, each nonce claimed (gmbank), and one multi-row
    insert. The outcome of each, in the order given. A message id twice in the batch is stored
    once; a message stored before is a duplicate (ON CONFLICT DO NOTHING: a copy being stored by
    another transaction makes the insert wait for it)."""
    holders = await _holding_banks(connection, {pending.account_no for pending in batch})
    outcomes: list[StoreOutcome | None] = [None] * len(batch)
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for index, pending in enumerate(batch):
        holder = holders.get(pending.account_no)
        if holder is not None and holder != pending.slug:
            outcomes[index] = StoreOutcome(StoreResult.foreign)
        elif pending.nonce is not None and not await _claim_nonce(
            connection,
            pending.slug,
            pending.nonce,
            pending.request.received_at,
            pending.nonce_ttl_seconds,
        ):
            outcomes[index] = StoreOutcome(StoreResult.replayed)
        else:
            rows.setdefault((pending.slug, pending.message_id), _stored_row(pending))
    inserted: dict[tuple[str, str], UUID] = {}
    if rows:
        inserted = await _insert_stored(connection, list(rows.values()))
    for index, pending in enumerate(batch):
        if outcomes[index] is None:
            # The first of the batch's copies gets the row; any other copy is a duplicate.
            stored_id = inserted.pop((pending.slug, pending.message_id), None)
            result_kind = StoreResult.duplicate if stored_id is None else StoreResult.stored
            outcomes[index] = StoreOutcome(result_kind, stored_id)
    return [outcome for outcome in outcomes if outcome is not None]


# The group commit's insert on PostgreSQL, built once: the rows go as one array per column. A
# multi-row INSERT built with its rows in it is compiled anew, one bound parameter at a time, for
# every batch: that was most of the store's CPU.
_INSERT_STORED = text("""
    INSERT INTO bank_messages (id, bank_slug, endpoint, message_id, verification, status,
                               content_type, signature_headers, body, events, account_no, detail,
                               attempts, received_at, processed_at)
    SELECT id, bank_slug, endpoint, message_id, verification, status, content_type,
           CAST(signature_headers AS json), body, events, account_no, detail, attempts,
           received_at, processed_at
      FROM unnest(CAST(:id AS uuid[]), CAST(:bank_slug AS varchar[]),
                  CAST(:endpoint AS varchar[]), CAST(:message_id AS varchar[]),
                  CAST(:verification AS varchar[]), CAST(:status AS varchar[]),
                  CAST(:content_type AS varchar[]), CAST(:signature_headers AS text[]),
                  CAST(:body AS bytea[]), CAST(:events AS integer[]),
                  CAST(:account_no AS varchar[]), CAST(:detail AS varchar[]),
                  CAST(:attempts AS integer[]), CAST(:received_at AS timestamptz[]),
                  CAST(:processed_at AS timestamptz[]))
        AS m(id, bank_slug, endpoint, message_id, verification, status, content_type,
             signature_headers, body, events, account_no, detail, attempts, received_at,
             processed_at)
    ON CONFLICT (bank_slug, message_id) DO NOTHING
    RETURNING id, bank_slug, message_id
""")


async def _insert_stored(
    connection: AsyncConnection, rows: list[dict[str, object]]
) -> dict[tuple[str, str], UUID]:
    """Insert these `_stored_row`s, skipping a (bank, message id) stored before: the id of each
    row inserted, by (bank, message id)."""
    if connection.dialect.name == "postgresql":
        columns = {name: [row[name] for row in rows] for name in rows[0]}
        columns["signature_headers"] = [json.dumps(h) for h in columns["signature_headers"]]
        result = await connection.execute(_INSERT_STORED, columns)
    else:
        table = BankMessage.__table__
        result = await connection.execute(
            insert_for(connection, table)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["bank_slug", "message_id"])
            .returning(table.c.id, table.c.bank_slug, table.c.message_id)
        )
    return {(row.bank_slug, row.message_id): row.id for row in result}


async def _holding_banks(connection: AsyncConnection, accounts: set[str]) -> dict[str, str]:
    """The bank of each of these escrow accounts that some institution holds."""
    rows = await connection.execute(
        select(Institution.escrow_account_no, Institution.bank_slug).where(
            Institution.escrow_account_no.in_(accounts)
        )
    )
    return {row.escrow_account_no: row.bank_slug for row in rows}


def _stored_row(pending: Pending) -> dict[str, object]:
    request = pending.request
    return {
        "id": uuid4(),
        "bank_slug": pending.slug,
        "endpoint": "notify",
        "message_id": pending.message_id,
        "verification": "ok",
        "status": MessageStatus.stored,
        "content_type": request.headers.get("content-type", "")[:200],
        "signature_headers": _signature_headers(request.headers),
        "body": request.body,
        "events": pending.events,
        "account_no": pending.account_no,
        "detail": None,
        "attempts": 0,
        "received_at": request.received_at,
        "processed_at": None,
    }


async def reject(
    session: AsyncSession,
    slug: str,
    request: InboundRequest,
    failure: VerificationFailed,
    remote_addr: str | None,
    *,
    endpoint: str = "notify",
) -> MessageStatus:
    """Keep a message that failed its signature check as evidence, with a security event."""
    message_id = uuid4()
    session.add(
        BankMessage(
            id=message_id,
            bank_slug=slug,
            endpoint=endpoint,
            message_id=None,
            verification=failure.problem,
            status=MessageStatus.rejected,
            content_type=request.headers.get("content-type", "")[:200],
            signature_headers=_signature_headers(request.headers),
            body=request.body,
            events=0,
            detail=failure.detail[:MAX_DETAIL],
            attempts=0,
            received_at=request.received_at,
        )
    )
    await session.flush()
    session.add(
        SecurityEvent(
            id=uuid4(),
            bank_slug=slug,
            kind=failure.problem,
            detail=f"{failure.detail} (body sha256 {hashlib.sha256(request.body).hexdigest()})"[
                :MAX_DETAIL
            ],
            remote_addr=remote_addr,
            bank_message_id=message_id,
            occurred_at=request.received_at,
        )
    )
    await session.flush()
    log.warning("bank %s: message refused, %s: %s", slug, failure.problem, failure.detail)
    return MessageStatus.rejected


def _signature_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name][:1000] for name in SIGNATURE_HEADERS if name in headers}


# --- Which bank may say what ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """The stored message the events being applied come from."""

    slug: str
    message_id: str  # the bank's id of it
    stored_id: UUID  # its bank_messages row: the raw bytes an alert points to
    received_at: datetime


class Trespass(StrEnum):
    """How a message spoke for what is not its bank's (the security event's kind)."""

    foreign_account = "foreign_account"  # an escrow account held at another bank
    foreign_instruction = "foreign_instruction"  # an instruction sent through another bank


@dataclass(frozen=True, slots=True)
class Foreign:
    trespass: Trespass
    institution_id: UUID  # the institution concerned
    detail: str


async def _foreign(session: AsyncSession, slug: str, events: Sequence[BankEvent]) -> list[Foreign]:
    """What in the events is not `slug`'s to speak of: an escrow account held at another bank, a
    result for an instruction sent through another bank, or one naming an account that is not its
    institution's. Two queries at most, whatever the number of events."""
    found: list[Foreign] = []
    accounts = {event.account_no for event in events if event.account_no}
    if accounts:
        holders = await session.execute(
            select(Institution.id, Institution.escrow_account_no, Institution.bank_slug).where(
                Institution.escrow_account_no.in_(accounts), Institution.bank_slug != slug
            )
        )
        found.extend(
            Foreign(
                Trespass.foreign_account,
                row.id,
                f"escrow account {row.escrow_account_no} is held at bank {row.bank_slug!r}",
            )
            for row in holders
        )
    results = {e.instruction_id: e for e in events if isinstance(e, InstructionResult)}
    if results:
        sent = await session.execute(
            select(
                Instruction.id,
                Instruction.institution_id,
                Instruction.bank_slug,
                Institution.escrow_account_no,
            )
            .join(Institution, Institution.id == Instruction.institution_id)
            .where(Instruction.id.in_(results))
        )
        for row in sent:
            named = results[row.id].account_no
            if row.bank_slug != slug:
                detail = f"instruction {row.id} was sent through bank {row.bank_slug!r}"
            elif named is not None and named != row.escrow_account_no:
                detail = f"instruction {row.id} is not of account {named}"
            else:
                continue
            found.append(Foreign(Trespass.foreign_instruction, row.institution_id, detail))
    return found


async def _lock_institutions(
    session: AsyncSession, events: Sequence[BankEvent]
) -> Sequence[Institution]:
    """The rows of the institutions whose accounts the events name, locked in the order of their
    ids, before anything else of theirs (the lock order of payouts): a credit or a debit may move
    an institution's alert level. (A result is locked with its instruction, `locked_instruction`.)"""
    accounts = sorted({event.account_no for event in events if event.account_no})
    if not accounts:
        return []
    return (
        await session.scalars(
            select(Institution)
            .where(Institution.escrow_account_no.in_(accounts))
            .order_by(Institution.id)
            .with_for_update()
        )
    ).all()


async def apply_notification(
    session: AsyncSession,
    source: Source,
    notification: Notification,
    remote_addr: str | None,
) -> MessageStatus:
    """Apply the message's events, or none of them when any is not its bank's to speak of."""
    foreign = await _foreign(session, source.slug, notification.events)
    if not foreign:
        await _lock_institutions(session, notification.events)
        for event in notification.events:
            await apply_event(session, source, event)
        return MessageStatus.processed
    detail = "; ".join(item.detail for item in foreign)
    await session.execute(
        update(BankMessage)
        .where(BankMessage.id == source.stored_id)
        .values(status=MessageStatus.refused, detail=detail[:MAX_DETAIL], processed_at=None)
    )
    session.add(
        SecurityEvent(
            id=uuid4(),
            bank_slug=source.slug,
            kind=foreign[0].trespass,
            detail=f"message {source.message_id}: {detail}"[:MAX_DETAIL],
            remote_addr=remote_addr,
            bank_message_id=source.stored_id,
            occurred_at=source.received_at,
        )
    )
    await session.flush()
    for institution_id in dict.fromkeys(item.institution_id for item in foreign):
        await raise_alert(
            session,
            institution_id,
            AlertKind.foreign_bank_message,
            AlertLevel.red,
            key=f"{source.slug}:{source.message_id}",
            actor=f"bank:{source.slug}",
            reason=(
                f"bank {source.slug!r} sent message {source.message_id} about this institution, "
                f"which it does not hold: {detail}; refused, nothing applied"
            ),
            bank_message_id=source.stored_id,
        )
    log.warning("bank %s: message %s refused: %s", source.slug, source.message_id, detail)
    return MessageStatus.refused


async def apply_payment_messages(
    session: AsyncSession, messages: Sequence[tuple[Source, Notification]]
) -> list[MessageStatus]:
    """Apply stored payment messages (the crediting worker's group: one institution's, or several
    institutions' where the deployment is not sharded by institution) with what
    `apply_notification` does to each, in fewer statements: the institutions locked in id order
    and their banks checked in one read, the payments that credit their order straight in one
    batch (`credit_matching_payments`) with one evaluation of each institution's alerts after
    them, and the rest one by one, in the order received. A message naming an account held at
    another bank is refused as `apply_notification` refuses it. The status of each message."""
    events = [event for _, notification in messages for event in notification.events]
    # The institutions holding the accounts, locked; the bank check of payments needs nothing
    # else than their banks.
    holders = {
        holder.escrow_account_no: holder for holder in await _lock_institutions(session, events)
    }
    statuses: list[MessageStatus] = [MessageStatus.processed] * len(messages)
    payments: list[tuple[Source, PaymentReceived]] = []
    for index, (source, notification) in enumerate(messages):
        if any(
            event.account_no in holders and holders[event.account_no].bank_slug != source.slug
            for event in notification.events
        ):
            statuses[index] = await apply_notification(session, source, notification, None)
        else:
            payments.extend(
                (source, event)
                for event in notification.events
                if isinstance(event, PaymentReceived)
            )
    outcomes = await credit_matching_payments(
        session, holders, [_bank_payment(source.slug, event) for source, event in payments]
    )
    credited: dict[UUID, list[PaymentReceived]] = {}
    for (source, event), outcome in zip(payments, outcomes, strict=True):
        if outcome is None:
            await _payment(session, source.slug, event)
        else:
            credited.setdefault(outcome.institution_id, []).append(event)
    if credited:
        locked = [holder for holder in holders.values() if holder.id in credited]
        profiles = await profiles_of(session, {holder.jurisdiction_code for holder in locked})
        await evaluate_money_locked(
            session,
            [(holder, profiles[holder.jurisdiction_code]) for holder in sorted(locked, key=_id)],
            utcnow(),
            {
                holder.id: (_cause_of_credits(credited[holder.id]), f"bank:{holder.bank_slug}")
                for holder in locked
            },
        )
    return statuses


def _id(institution: Institution) -> UUID:
    return institution.id


def _cause_of_credits(credited: Sequence[PaymentReceived]) -> str:
    """What moved the money, as an alert level change records it."""
    if len(credited) == 1:
        return f"payment {credited[0].bank_reference} of {credited[0].amount_fen} fen"
    total = sum(event.amount_fen for event in credited)
    return f"{len(credited)} payments of {total} fen in all"


# --- Applying events -----------------------------------------------------------------------------


async def apply_event(session: AsyncSession, source: Source, event: BankEvent) -> None:
    if isinstance(event, PaymentReceived):
        await _payment(session, source.slug, event)
    elif isinstance(event, InstructionResult):
        await _result(session, source, event)
    elif isinstance(event, DebitBooked):
        await _debit(session, source, event)
    # A Notice moves nothing: the stored message is its record.


def _bank_payment(slug: str, event: PaymentReceived) -> BankPayment:
    return BankPayment(
        bank_slug=slug,
        bank_reference=event.bank_reference,
        escrow_account_no=event.account_no,
        order_no=event.order_no,
        amount_fen=event.amount_fen,
        paid_at=event.paid_at,
        channel_order_id=event.channel_order_id,
        payer_name=event.payer_name,
        payer_account_no=event.payer_account_no,
    )


async def _payment(session: AsyncSession, slug: str, event: PaymentReceived) -> None:
    outcome = await credit_payment(session, _bank_payment(slug, event))
    if not outcome.replayed:
        await evaluate_money(
            session,
            outcome.institution_id,
            utcnow(),
            cause=f"payment {event.bank_reference} of {event.amount_fen} fen",
            actor=f"bank:{slug}",
        )
    if outcome.result is PaymentResult.suspense and not outcome.replayed:
        await raise_alert(
            session,
            outcome.institution_id,
            AlertKind.suspense,
            AlertLevel.yellow,
            key=f"{slug}:{event.bank_reference}",
            actor=f"bank:{slug}",
            reason=(
                f"{event.amount_fen} fen received (bank reference {event.bank_reference}, order "
                f"{event.order_no!r}) held in suspense: {outcome.reason}"
            ),
        )


async def _result(session: AsyncSession, source: Source, event: InstructionResult) -> None:
    applied = await apply_outcome(
        session, event.instruction_id, Outcome(event.status, event.reason)
    )
    if applied is not Applied.unknown:
        return
    institution_id = await _institution_by_account(session, event.account_no)
    log.warning(
        "bank %s reports %s for unknown instruction %r",
        source.slug,
        event.status,
        event.instruction_id,
    )
    if institution_id is None:
        return
    if event.status is ResultStatus.settled:
        # The bank says it paid what we never instructed.
        await _unauthorized_debit(
            session,
            source,
            institution_id,
            event.bank_reference or event.instruction_id,
            f"the bank reports instruction {event.instruction_id!r}, which we never sent, settled",
        )
        return
    await raise_alert(
        session,
        institution_id,
        AlertKind.unknown_instruction,
        AlertLevel.red,
        key=f"{source.slug}:{event.instruction_id}:{event.status}",
        actor=f"bank:{source.slug}",
        reason=(
            f"the bank reports {event.status} for instruction {event.instruction_id!r}, "
            "which we never sent"
        ),
        bank_message_id=source.stored_id,
    )


async def _debit(session: AsyncSession, source: Source, event: DebitBooked) -> None:
    institution_id = await _institution_by_account(session, event.account_no)
    if institution_id is None:
        log.warning(
            "bank %s: %s on an account no institution holds", source.slug, event.description
        )
        return
    if await _instruction_debited(session, source.slug, institution_id, event):
        return
    await _unauthorized_debit(
        session,
        source,
        institution_id,
        event.bank_reference or source.message_id,
        f"{yuan(event.amount_fen)} yuan booked out of escrow account {event.account_no}, "
        f"which matches none of our instructions ({event.description})",
    )


async def _instruction_debited(
    session: AsyncSession, slug: str, institution_id: UUID, event: DebitBooked
) -> bool:
    """Whether the debit is one of ours: an instruction of this institution sent through this bank
    and not failed (a failed one's money never left), quoted by its id for its exact amount, or
    (ums, which quotes the order) a refund of the order it pays back."""
    query = select(Instruction.id).where(
        Instruction.institution_id == institution_id,
        Instruction.bank_slug == slug,
        Instruction.status != InstructionStatus.failed,
    )
    if event.instruction_id is not None:
        query = query.where(
            Instruction.id == event.instruction_id, Instruction.amount_fen == event.amount_fen
        )
    elif event.order_no is not None:
        query = query.where(
            Instruction.kind == InstructionKind.refund, Instruction.order_no == event.order_no
        )
    else:
        return False
    return await session.scalar(query.limit(1)) is not None


async def _unauthorized_debit(
    session: AsyncSession, source: Source, institution_id: UUID, reference: str, what: str
) -> None:
    """Money left the escrow account without an instruction: the most serious thing a bank can
    tell us. The alert points at the raw message."""
    await raise_alert(
        session,
        institution_id,
        AlertKind.unauthorized_debit,
        AlertLevel.red,
        key=f"{source.slug}:{reference}",
        actor=f"bank:{source.slug}",
        reason=f"money left without an instruction: {what}; bank {source.slug!r} message "
        f"{source.message_id}",
        bank_message_id=source.stored_id,
    )


async def _institution_by_account(session: AsyncSession, account_no: str | None) -> UUID | None:
    if account_no is None:
        return None
    return await session.scalar(
        select(Institution.id).where(Institution.escrow_account_no == account_no)
    )


# --- Retrying ------------------------------------------------------------------------------------


async def retry_failed_messages(db: Database) -> int:
    """Apply again the stored messages whose application failed (part of the `process_inbox`
    job): one pass over them, oldest first; each try counts towards MAX_ATTEMPTS."""
    secret = db.settings.secret_key.get_secret_value()
    handled = 0
    for message_id in await db.run(_failed_messages):
        if await db.run(partial(_reapply, message_id=message_id, secret=secret)):
            handled += 1
    return handled


async def _failed_messages(session: AsyncSession) -> list[UUID]:
    rows = await session.scalars(
        select(BankMessage.id)
        .where(BankMessage.status == MessageStatus.failed, BankMessage.attempts < MAX_ATTEMPTS)
        .order_by(BankMessage.received_at)
        .limit(500)
    )
    return list(rows)


async def _reapply(session: AsyncSession, message_id: UUID, secret: str) -> bool:
    message = await session.get(BankMessage, message_id, with_for_update=True)
    if message is None or message.status != MessageStatus.failed:
        return False
    message.attempts += 1
    bank = await load_bank(session, message.bank_slug, secret)
    request = InboundRequest(
        headers={"content-type": message.content_type, **message.signature_headers},
        body=message.body,
        received_at=message.received_at,
    )
    try:
        notification = bank.adapter.parse_notification(request)
        source = Source(message.bank_slug, notification.message_id, message.id, message.received_at)
        async with session.begin_nested():
            status = await apply_notification(session, source, notification, None)
    except Exception as error:
        log.exception("bank message %s still cannot be applied", message_id)
        message.detail = repr(error)[:MAX_DETAIL]
        return False
    if status is MessageStatus.processed:
        await session.execute(
            update(BankMessage)
            .where(BankMessage.id == message_id)
            .values(status=MessageStatus.processed, processed_at=utcnow(), detail=None)
        )
    return True


# --- What operators see --------------------------------------------------------------------------


class BankMessageNotFound(NotFound):
    code = "bank_message_not_found"
    title = "No such bank message"


class BankMessageNotFailed(Conflict):
    code = "bank_message_not_failed"
    title = "Only a message whose application failed can be applied again"


async def page_of_messages(
    session: AsyncSession, slug: str, status: MessageStatus | None, page: PageRequest
) -> tuple[Sequence[BankMessage], str | None]:
    query = select(BankMessage).where(BankMessage.bank_slug == slug)
    if status is not None:
        query = query.where(BankMessage.status == status)
    return await paginate(session, query, page, BankMessage.received_at, BankMessage.id)


async def retry_message(
    db: Database,
    slug: str,
    message_id: UUID,
    then: Callable[[AsyncSession, BankMessage], Awaitable[None]] | None = None,
) -> BankMessage:
    """Apply a failed message again now, whatever its count of tries (an operator's retry, once
    the cause is fixed, e.g. the institution holding its account onboarded). `then` runs in the
    same unit of work once it is applied (the retry's audit record)."""
    secret = db.settings.secret_key.get_secret_value()

    async def work(session: AsyncSession) -> BankMessage:
        message = await session.get(BankMessage, message_id, with_for_update=True)
        if message is None or message.bank_slug != slug:
            raise BankMessageNotFound(f"bank {slug!r} has no message {message_id}")
        if message.status != MessageStatus.failed:
            raise BankMessageNotFailed(f"message {message_id} is {message.status}, not failed")
        await _reapply(session, message_id, secret)
        if then is not None:
            await then(session, message)
        return message

    return await db.run(work)
