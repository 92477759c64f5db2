"""Sending the outbox, and following what was sent (the `dispatch_instructions` and
`poll_instructions` jobs).

An instruction is written `pending` with its ledger reservation (app/instructions/service.py). The
dispatch job claims a batch (row locks with SKIP LOCKED, and a lease in `next_attempt_at`, so two
dispatchers never send the same instruction at once), calls the bank outside any transaction, and
records the answer in a transaction of its own:

- accepted, or "duplicate" (the bank has it already: the first one stands) -> `sent`;
- a definite refusal -> `failed`, and the reservation is voided;
- a timeout, a 502, an unsigned or unreadable answer -> unclear: the job asks the bank before it
  would ever send again. "Not found" means the bank never got it: send it again, with the same id.
  Anything found is followed to its outcome. With no answer to the query either, the instruction
  stays `pending` and is tried again after a backoff, starting with the query.

An instruction that was ever claimed (`attempts` > 0) may be at the bank already, so it too starts
with a query. A bank without a query (iso20022) is asked by sending again with the same id: it
answers "duplicate" when it has the instruction.

The poll job asks the bank about `sent` instructions (for a bank that answers queries), and, for a
bank whose results come only by query (ums), keeps asking about settled ones for a while, since a
payment can be returned (退票) days after it settled.
"""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

import httpx
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.banks.config import BankNotFound, BankSetup, load_bank
from app.banks.protocol import (
    BankResponse,
    OutboundInstruction,
    OutboundRequest,
    QueryAnswer,
    QueryStatus,
    ResultStatus,
    SubmitAnswer,
    SubmitStatus,
)
from app.db.unit import Database
from app.instructions.outcomes import Outcome, apply_to, locked_instruction
from app.kit.clock import utcnow
from app.logging import correlation_headers
from app.models import Institution, Instruction
from app.models.instruction import InstructionKind, InstructionStatus

log = logging.getLogger(__name__)

BATCH = 50
CONCURRENCY = 8  # calls to banks in flight at once, per job run
LEASE = timedelta(minutes=2)  # how long a claimed instruction is left to the job that claimed it
FIRST_POLL_AFTER = timedelta(seconds=15)  # how soon the bank is asked again after a send
POLL_EVERY = timedelta(minutes=5)  # and how often, at most, while it has the instruction
RETURN_WATCH = timedelta(days=7)  # how long a settled instruction is watched for a return
RETURN_POLL_EVERY = timedelta(hours=1)  # how often, then: a return comes days later, not minutes
CALL_TRIES = 3  # tries of one call that did not reach the bank, or of a query that got no answer
RETRY_BASE_SECONDS = 0.2

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Claimed:
    instruction: OutboundInstruction
    bank_slug: str
    earlier_attempts: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the job learnt about one instruction: an outcome to apply, or nothing certain."""

    outcome: Outcome | None  # pending (= the bank has it), settled, failed, returned
    resend_later: bool = False  # nothing certain: try again after a backoff
    not_found: bool = False  # the bank does not have it (the poll job puts it back to pending)
    note: str | None = None


# --- calling the bank ---------------------------------------------------------------------------


class Unreached(Exception):
    """The request never reached the bank (no connection): it is safe to send it again."""


async def _call(
    client: httpx.AsyncClient, bank: BankSetup, request: OutboundRequest
) -> BankResponse:
    try:
        response = await client.request(
            request.method,
            bank.base_url + request.path,
            # Our correlation id goes along, so the bank's logs of this call can be found by it.
            headers={**request.headers, **correlation_headers()},
            content=request.body,
        )
    except (httpx.ConnectError, httpx.ConnectTimeout) as error:
        raise Unreached(repr(error)) from error
    return BankResponse(
        status_code=response.status_code,
        headers={name.lower(): value for name, value in response.headers.items()},
        body=response.content,
        received_at=utcnow(),
    )


async def _with_retries(attempt: Callable[[], Awaitable[T]], retry: Callable[[T], bool]) -> T:
    """Try up to CALL_TRIES times, with exponential backoff and full jitter between tries."""
    for number in range(1, CALL_TRIES + 1):
        result = await attempt()
        if number == CALL_TRIES or not retry(result):
            return result
        await asyncio.sleep(random.uniform(0, RETRY_BASE_SECONDS * 2**number))
    raise AssertionError("unreachable")


async def submit(
    client: httpx.AsyncClient, bank: BankSetup, instruction: OutboundInstruction
) -> SubmitAnswer:
    async def once() -> SubmitAnswer | None:
        request = bank.adapter.submit_request(bank.config, instruction, utcnow())
        try:
            response = await _call(client, bank, request)
        except Unreached:
            return None  # retry: it never left
        except httpx.HTTPError as error:  # sent, but no answer: the bank may have it
            return SubmitAnswer(SubmitStatus.unclear, detail=repr(error)[:200])
        return bank.adapter.read_submit(bank.config, response)

    answer = await _with_retries(once, lambda result: result is None)
    return answer or SubmitAnswer(SubmitStatus.unclear, detail="the bank could not be reached")


async def query(
    client: httpx.AsyncClient, bank: BankSetup, instruction: OutboundInstruction
) -> QueryAnswer | None:
    """The bank's answer about `instruction`, or None when the bank has no query."""
    if bank.adapter.query_request(bank.config, instruction, utcnow()) is None:
        return None

    async def once() -> QueryAnswer:
        request = bank.adapter.query_request(bank.config, instruction, utcnow())
        assert request is not None
        try:
            response = await _call(client, bank, request)
        except (Unreached, httpx.HTTPError) as error:
            return QueryAnswer(QueryStatus.unclear, detail=repr(error)[:200])
        return bank.adapter.read_query(bank.config, instruction, response)

    return await _with_retries(once, lambda answer: answer.status is QueryStatus.unclear)


_FROM_QUERY = {
    QueryStatus.processing: ResultStatus.pending,
    QueryStatus.settled: ResultStatus.settled,
    QueryStatus.failed: ResultStatus.failed,
    QueryStatus.returned: ResultStatus.returned,
}


def _verdict_of_query(answer: QueryAnswer) -> Verdict:
    if answer.status is QueryStatus.unclear:
        return Verdict(None, resend_later=True, note=f"query unanswered: {answer.detail}")
    if answer.status is QueryStatus.not_found:
        return Verdict(None, not_found=True, note="the bank does not have it")
    return Verdict(Outcome(_FROM_QUERY[answer.status], answer.detail, answer.code))


def _verdict_of_submit(answer: SubmitAnswer) -> Verdict | None:
    """None when the answer is unclear."""
    if answer.status in (SubmitStatus.accepted, SubmitStatus.duplicate):
        return Verdict(Outcome(ResultStatus.pending, bank_code=answer.code))
    if answer.status is SubmitStatus.refused:
        reason = f"refused by the bank: {answer.code} {answer.detail or ''}".strip()
        return Verdict(Outcome(ResultStatus.failed, reason, answer.code))
    return None


async def deliver(client: httpx.AsyncClient, bank: BankSetup, claimed: Claimed) -> Verdict:
    """Get `claimed` to the bank exactly once, asking before any second send."""
    instruction = claimed.instruction
    if claimed.earlier_attempts > 0:
        answer = await query(client, bank, instruction)
        if answer is not None and answer.status is not QueryStatus.not_found:
            return _verdict_of_query(answer)
    first = _verdict_of_submit(await submit(client, bank, instruction))
    if first is not None:
        return first
    # Unclear: the bank may or may not have it. Ask; send again only if it says it has not (or, at
    # a bank without a query, send again: the same id makes it answer "duplicate" if it has it).
    answer = await query(client, bank, instruction)
    if answer is not None:
        verdict = _verdict_of_query(answer)
        if not verdict.not_found:
            return verdict
    again = await submit(client, bank, instruction)
    return _verdict_of_submit(again) or Verdict(
        None, resend_later=True, note=f"no clear answer: {again.detail}"
    )


# --- the jobs ------------------------------------------------------------------------------------


def _outbound(instruction: Instruction, escrow_account_no: str) -> OutboundInstruction:
    return OutboundInstruction(
        id=instruction.id,
        kind=InstructionKind(instruction.kind),
        amount_fen=instruction.amount_fen,
        escrow_account_no=escrow_account_no,
        payee_account_no=instruction.payee_account_no,
        payee_name=instruction.payee_name,
        memo=instruction.memo,
        created_at=instruction.created_at,
        order_no=instruction.order_no,
        payment_reference=instruction.payment_reference,
        payment_channel_order_id=instruction.payment_channel_order_id,
    )


async def _claim(session: AsyncSession, as_of: datetime, *, polling: bool) -> list[Claimed]:
    due = or_(Instruction.next_attempt_at.is_(None), Instruction.next_attempt_at <= as_of)
    if polling:
        which = or_(
            Instruction.status == InstructionStatus.sent,
            and_(
                Instruction.status == InstructionStatus.succeeded,
                Instruction.resolved_at >= as_of - RETURN_WATCH,
            ),
        )
    else:
        which = Instruction.status == InstructionStatus.pending
    rows = await session.execute(
        select(Instruction, Institution.escrow_account_no)
        .join(Institution, Institution.id == Instruction.institution_id)
        .where(which, due)
        .order_by(Instruction.created_at)
        .limit(BATCH)
        .with_for_update(of=Instruction, skip_locked=True)
    )
    claimed = []
    for instruction, escrow_account_no in rows:
        claimed.append(
            Claimed(
                _outbound(instruction, escrow_account_no),
                instruction.bank_slug,
                instruction.attempts,
            )
        )
        if polling:
            instruction.next_attempt_at = _next_poll(instruction, as_of)
        else:
            instruction.next_attempt_at = as_of + LEASE
            instruction.attempts += 1
    await session.flush()
    return claimed


def _next_poll(instruction: Instruction, as_of: datetime) -> datetime:
    """When the poll job asks about it next. While the bank has it: after as long again as it has
    been there (15 s, 30 s, 1 min, ...), at most every 5 minutes, since most instructions settle
    within seconds or minutes of being sent, and an institution should not see `sent` for five
    minutes after its bank paid. Once settled, hourly: it is watched for a return, which comes
    days later."""
    if instruction.status == InstructionStatus.succeeded:
        return as_of + RETURN_POLL_EVERY
    return as_of + poll_delay(as_of - (instruction.sent_at or as_of))


def poll_delay(at_bank_for: timedelta) -> timedelta:
    """How long until the next question about an instruction the bank has had for `at_bank_for`."""
    return min(max(at_bank_for, FIRST_POLL_AFTER), POLL_EVERY)


def _backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... up to an hour, with jitter so retries of many spread out."""
    seconds = min(3600, 30 * 2 ** max(0, attempts - 1))
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))


async def _record(
    session: AsyncSession, claimed: Claimed, verdict: Verdict, as_of: datetime
) -> None:
    instruction = await locked_instruction(session, claimed.instruction.id)
    if instruction is None:
        return
    if verdict.note is not None:
        instruction.detail = verdict.note[:500]
    if verdict.outcome is not None:
        was = instruction.status
        await apply_to(session, instruction, verdict.outcome)
        if was == InstructionStatus.pending and instruction.status == InstructionStatus.sent:
            # Just sent: the poll job may ask about it from now on. (An instruction the poll job
            # found still processing keeps the time its claim set, or the run would ask forever.)
            instruction.next_attempt_at = as_of
        elif was != instruction.status:
            instruction.next_attempt_at = _next_poll(instruction, as_of)
    elif verdict.not_found and instruction.status == InstructionStatus.sent:
        # The bank lost it: send it again, asking first (attempts > 0).
        instruction.status = InstructionStatus.pending
        instruction.next_attempt_at = as_of
    elif verdict.resend_later and instruction.status == InstructionStatus.pending:
        instruction.next_attempt_at = as_of + _backoff(instruction.attempts)
    await session.flush()


async def _bank_or_none(session: AsyncSession, slug: str, secret_key: str) -> BankSetup | None:
    try:
        return await load_bank(session, slug, secret_key)
    except BankNotFound:
        return None


async def follow(client: httpx.AsyncClient, bank: BankSetup, claimed: Claimed) -> Verdict | None:
    """The poll job's question about one instruction; None for a bank without a query."""
    answer = await query(client, bank, claimed.instruction)
    return None if answer is None else _verdict_of_query(answer)


async def _run(db: Database, as_of: datetime, *, polling: bool) -> int:
    secret = db.settings.secret_key.get_secret_value()
    job = "poll" if polling else "dispatch"
    banks: dict[str, BankSetup | None] = {}
    limit = asyncio.Semaphore(CONCURRENCY)
    timeout = httpx.Timeout(
        db.settings.bank_timeout_seconds, connect=min(5.0, db.settings.bank_timeout_seconds)
    )
    handled = 0

    async def one(client: httpx.AsyncClient, claimed: Claimed) -> None:
        async with limit:
            try:
                bank = banks.get(claimed.bank_slug)
                if bank is None:
                    raise BankNotFound(f"no bank {claimed.bank_slug!r} is configured")
                verdict = await (
                    follow(client, bank, claimed) if polling else deliver(client, bank, claimed)
                )
            except Exception as error:  # no bank, or an instruction the adapter cannot express
                log.exception("instruction %s: %s failed", claimed.instruction.id, job)
                verdict = Verdict(None, resend_later=True, note=f"{job} failed: {error!r}")
            if verdict is not None:
                await db.run(lambda session: _record(session, claimed, verdict, as_of))

    async with httpx.AsyncClient(timeout=timeout) as client:
        while batch := await db.run(lambda session: _claim(session, as_of, polling=polling)):
            for slug in {claimed.bank_slug for claimed in batch} - banks.keys():
                banks[slug] = await db.run(partial(_bank_or_none, slug=slug, secret_key=secret))
            await asyncio.gather(*(one(client, claimed) for claimed in batch))
            handled += len(batch)
    log.info("%s: %d instruction(s)", job, handled)
    return handled


async def dispatch_instructions(db: Database, as_of: datetime) -> int:
    return await _run(db, as_of, polling=False)


async def poll_instructions(db: Database, as_of: datetime) -> int:
    return await _run(db, as_of, polling=True)
