"""Bank statements in: `POST /v1/banks/{slug}/statements`, and `prepaid-guard reconcile FILE`.

- The file is verified by the bank's signature (as its notifications are): one that fails is kept
  as evidence with a security event, answered 401, and nothing else is recorded.
- A verified file is stored raw in the inbox (endpoint `statements`) before it is read, once per
  bank and content (its SHA-256 is its message id): the same statement sent twice is recognised and
  answered as the first time, changing nothing.
- It is then read and its run recorded in one unit of work (app.reconciliation.service): a file
  that does not parse (422 naming its line), an account no institution at this bank holds (422, the
  file kept for the operator), or a day in the future (422) leaves no run behind.
"""

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from app.banks.config import BankSetup, cached_bank
from app.banks.inbox import MAX_DETAIL, claim_nonce, reject, store_raw
from app.banks.protocol import (
    InboundRequest,
    SignatureProblem,
    StatementMalformed,
    VerificationFailed,
    Verified,
)
from app.db.unit import Database
from app.kit.clock import utcnow
from app.kit.errors import DomainError, Unprocessable
from app.models import BankMessage, ReconciliationRun
from app.models.bank_message import MessageStatus
from app.reconciliation.service import (
    StatementInFuture,
    UnknownEscrowAccount,
    record_run,
    run_of_message,
)

log = logging.getLogger(__name__)

ENDPOINT = "statements"


class StatementUnauthorized(DomainError):
    status = 401
    code = "bad_signature"
    title = "The statement's signature does not hold"


class StatementUnreadable(Unprocessable):
    code = "statement_malformed"
    title = "The statement does not parse"


@dataclass(frozen=True, slots=True)
class Intake:
    run: ReconciliationRun
    replayed: bool  # the same statement was received before: its first run


def statement_id(body: bytes) -> str:
    return "statement:" + hashlib.sha256(body).hexdigest()


async def receive_statement(
    db: Database,
    slug: str,
    request: InboundRequest,
    remote_addr: str | None,
    chunks: Callable[[], Iterable[bytes]] | None = None,
    *,
    vouched: bool = False,
) -> Intake:
    """Verify, store, read and record one statement file. `chunks` gives the body's bytes, anew
    each time it is called, as the reader is to get them (e.g. through a progress bar); `vouched`:
    the operator hands the file over (`prepaid-guard reconcile` without the bank's signature
    headers), so no signature is checked."""
    bank = await cached_bank(db, slug)
    try:
        verified = Verified() if vouched else bank.adapter.verify_statement(bank.config, request)
    except VerificationFailed as failure:
        await _refuse(db, slug, request, failure, remote_addr)
        raise StatementUnauthorized(failure.detail) from None
    message_id = statement_id(request.body)

    async def store(session: AsyncSession) -> tuple[UUID, str]:
        if verified.nonce is not None and not await claim_nonce(
            session, slug, verified.nonce, request.received_at, verified.nonce_ttl_seconds
        ):
            raise _Replayed()
        stored = await store_raw(
            session, slug, request, message_id, MessageStatus.received, None, endpoint=ENDPOINT
        )
        if stored is not None:
            return stored, MessageStatus.received
        row = (
            await session.execute(
                select(BankMessage.id, BankMessage.status).where(
                    BankMessage.bank_slug == slug, BankMessage.message_id == message_id
                )
            )
        ).one()
        return row.id, row.status

    try:
        stored_id, status = await db.run(store)
    except _Replayed:
        replay = VerificationFailed(SignatureProblem.replayed, "the nonce was seen before")
        await _refuse(db, slug, request, replay, remote_addr)
        raise StatementUnauthorized(replay.detail) from None
    return await _reconcile(db, bank, stored_id, status, chunks or (lambda: [request.body]))


async def _reconcile(
    db: Database,
    bank: BankSetup,
    stored_id: UUID,
    status: str,
    chunks: Callable[[], Iterable[bytes]],
) -> Intake:
    if status == MessageStatus.processed:
        earlier = await db.run(lambda session: run_of_message(session, stored_id))
        return Intake(earlier, replayed=True)
    if status != MessageStatus.received:  # malformed or refused the first time: say so again
        detail = await db.run(lambda session: _detail_of(session, stored_id))
        raise StatementUnreadable(detail or "this statement was refused before", replayed=True)

    async def work(session: AsyncSession) -> ReconciliationRun:
        message = await _locked(session, stored_id)
        if message.status == MessageStatus.processed:  # another request read it meanwhile
            return await run_of_message(session, stored_id)
        run = await record_run(
            session, bank, stored_id, lambda: bank.adapter.read_statement(chunks()), utcnow()
        )
        message.status = MessageStatus.processed
        message.events = run.lines
        message.processed_at = utcnow()
        return run

    try:
        return Intake(await db.run(work), replayed=False)
    except StatementMalformed as problem:
        await _mark(db, stored_id, MessageStatus.malformed, problem.detail)
        raise StatementUnreadable(problem.detail, line=problem.line) from None
    except (UnknownEscrowAccount, StatementInFuture) as refusal:
        await _mark(db, stored_id, MessageStatus.refused, refusal.detail)
        raise


class _Replayed(Exception):
    pass


async def _refuse(
    db: Database,
    slug: str,
    request: InboundRequest,
    failure: VerificationFailed,
    remote_addr: str | None,
) -> None:
    await db.run(
        lambda session: reject(session, slug, request, failure, remote_addr, endpoint=ENDPOINT)
    )


async def _mark(db: Database, stored_id: UUID, status: MessageStatus, detail: str) -> None:
    async def work(session: AsyncSession) -> None:
        message = await _locked(session, stored_id)
        message.status = status
        message.detail = detail[:MAX_DETAIL]

    await db.run(work)


async def _locked(session: AsyncSession, stored_id: UUID) -> BankMessage:
    """The stored statement's row, locked, without its file: the reader has the file already, and
    a busy day's is a hundred megabytes."""
    return await session.get_one(
        BankMessage, stored_id, with_for_update=True, options=[defer(BankMessage.body)]
    )


async def _detail_of(session: AsyncSession, stored_id: UUID) -> str | None:
    return await session.scalar(select(BankMessage.detail).where(BankMessage.id == stored_id))
