"""What the simulated banks do: open accounts, receive payments, accept or refuse instructions,
execute and return them, and deliver their messages to the service. Every change to the books
happens under the one lock; deliveries happen outside it, so a slow service never stalls the bank.
"""

import asyncio
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx

from app.kit.clock import utcnow
from bank_simulator.config import SimBank, SimulatorConfig
from bank_simulator.messages import DIALECTS, Dialect
from bank_simulator.messages.base import Outgoing, Submission
from bank_simulator.state import (
    Account,
    Attempt,
    Behaviour,
    Books,
    Direction,
    Instruction,
    InstructionState,
    Message,
    Payment,
    QueuedBehaviour,
    new_message_id,
)

NONCE_TTL = timedelta(minutes=10)  # gmbank: a nonce is refused when seen in the last 10 minutes


class SimError(Exception):
    """A control request the simulator cannot do: answered with `status` and `detail`."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Outcome(StrEnum):
    accepted = "accepted"
    duplicate = "duplicate"  # the earlier submission stands
    insufficient = "insufficient"
    unknown_account = "unknown_account"
    # A refund that names no payment into this account (or misquotes it): the bank cannot send
    # it back by the original route.
    unknown_payment = "unknown_payment"
    refused = "refused"
    dropped = "dropped"  # lost before the bank recorded it: answered 502


@dataclass(frozen=True)
class SubmitResult:
    outcome: Outcome
    instruction: Instruction | None
    behaviour: QueuedBehaviour | None  # what the control API asked of this submission's answer


def _pays_back(submission: Submission, original: Payment | None) -> bool:
    """Whether a refund quotes a payment into its own account, by the references the bank knows it
    by (ums also its channel order id), for no more than was paid."""
    if original is None or original.account_no != submission.account_no:
        return False
    channel_order_id = submission.origin.get("origTargetOrderId")
    if channel_order_id is not None and channel_order_id != original.channel_order_id:
        return False
    return submission.amount_fen <= original.amount_fen


class Simulator:
    def __init__(self, config: SimulatorConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self.banks = {bank.slug: bank for bank in config.banks}
        self.books = Books()
        self.client = client

    # --- lookups ---

    def bank(self, slug: str, adapter: str | None = None) -> SimBank:
        bank = self.banks.get(slug)
        if bank is None or (adapter is not None and bank.adapter != adapter):
            raise SimError(404, f"no bank {slug!r}" + (f" speaking {adapter}" if adapter else ""))
        return bank

    def dialect(self, bank: SimBank) -> Dialect:
        return DIALECTS[bank.adapter]

    def _account(self, slug: str, account_no: str) -> Account:
        account = self.books.accounts.get((slug, account_no))
        if account is None:
            raise SimError(404, f"no account {account_no!r} at bank {slug!r}")
        return account

    def instruction(self, slug: str, instruction_id: str) -> Instruction | None:
        """For an answer read at once (no await in between), so it sees no half-made change:
        every change is made whole under the lock, without awaiting."""
        return self.books.instructions.get((slug, instruction_id))

    # --- accounts ---

    async def open_account(
        self, slug: str, account_no: str, name: str, balance_fen: int
    ) -> Account:
        self.bank(slug)
        async with self.books.lock:
            if (slug, account_no) in self.books.accounts:
                raise SimError(409, f"account {account_no!r} already exists at bank {slug!r}")
            account = Account(slug, account_no, name, balance_fen, balance_fen)
            self.books.accounts[(slug, account_no)] = account
            return account

    async def account(self, slug: str, account_no: str) -> dict[str, Any]:
        async with self.books.lock:
            account = self._account(slug, account_no)
            return {
                "slug": slug,
                "account_no": account_no,
                "name": account.name,
                "balance_fen": account.balance_fen,
                "available_fen": account.available_fen,
                "transactions": [t.as_json() for t in account.transactions],
            }

    # --- payments in ---

    async def pay(
        self,
        *,
        slug: str,
        account_no: str,
        order_no: str,
        amount_fen: int,
        payer_name: str,
        payer_account: str,
        memo: str,
        status: str | None,
        amount_text: str | None,
        copies: int,
        deliver_now: bool,
    ) -> dict[str, Any]:
        """Book the credit (when the status is a success) and notify the service."""
        bank = self.bank(slug)
        dialect = self.dialect(bank)
        status = status or dialect.payment_success_status
        now = utcnow()
        async with self.books.lock:
            account = self._account(slug, account_no)
            payment = Payment(
                slug=slug,
                account_no=account_no,
                order_no=order_no,
                amount_fen=amount_fen,
                bank_reference=self.books.new_reference(now),
                channel_order_id=self.books.new_reference(now),
                payer_name=payer_name,
                payer_account=payer_account,
            )
            if status in dialect.crediting_statuses:
                account.book(
                    at=now,
                    direction=Direction.credit,
                    amount_fen=amount_fen,
                    reference=order_no,
                    counterparty_account=payer_account,
                    counterparty_name=payer_name,
                    memo=memo,
                    bank_reference=payment.bank_reference,
                )
                self.books.payments[(slug, payment.bank_reference)] = payment
            message_id = new_message_id()
            outgoing = dialect.payment(
                bank,
                message_id=message_id,
                payment=payment,
                status=status,
                amount_text=amount_text
                if amount_text is not None
                else dialect.amount_text(amount_fen),
                at=now,
            )
            message = self._keep(message_id, slug, "payment", outgoing)
        deliveries = await self._deliver(message, copies) if deliver_now else []
        return {
            "message_id": message.id,
            "bank_reference": payment.bank_reference,
            "channel_order_id": payment.channel_order_id,
            "booked": status in dialect.crediting_statuses,
            "deliveries": deliveries,
        }

    # --- instructions out of the escrow account ---

    async def behave(self, slug: str, behaviour: Behaviour, count: int, hang_seconds: float) -> int:
        self.bank(slug)
        async with self.books.lock:
            queue = self.books.behaviours.setdefault(slug, deque())
            queue.extend(QueuedBehaviour(behaviour, hang_seconds) for _ in range(count))
            return len(queue)

    async def seen_nonce(self, slug: str, nonce: str, now: datetime) -> bool:
        """Whether the nonce was used in the last ten minutes; records it otherwise."""
        key = f"{slug}:{nonce}"
        async with self.books.lock:
            nonces = self.books.nonces
            for old in [k for k, at in nonces.items() if now - at > NONCE_TTL]:
                del nonces[old]
            if key in nonces:
                return True
            nonces[key] = now
            return False

    async def submit(self, slug: str, submission: Submission, now: datetime) -> SubmitResult:
        """Decide on an instruction: the queued behaviour first, then duplicates, the account and
        its available balance. An accepted one is only recorded (processing); `settle` runs it."""
        async with self.books.lock:
            queued = self.books.next_behaviour(slug)
            behaviour = queued.behaviour if queued else Behaviour.accept
            if behaviour is Behaviour.drop_before_execute:
                return SubmitResult(Outcome.dropped, None, queued)
            existing = self.books.instructions.get((slug, submission.id))
            if existing is not None and existing.state is not InstructionState.refused:
                existing.submissions += 1
                return SubmitResult(Outcome.duplicate, existing, queued)
            account = self.books.accounts.get((slug, submission.account_no))
            original = self.books.payments.get((slug, submission.original_reference or ""))
            if behaviour is Behaviour.refuse:
                outcome = Outcome.refused
            elif account is None:
                outcome = Outcome.unknown_account
            elif submission.kind == "refund" and not _pays_back(submission, original):
                outcome = Outcome.unknown_payment
            elif (
                behaviour is Behaviour.insufficient or account.available_fen < submission.amount_fen
            ):
                outcome = Outcome.insufficient
            else:
                outcome = Outcome.accepted
                account.held_fen += submission.amount_fen
            payee_account, payee_name = submission.payee_account, submission.payee_name
            if original is not None:  # a refund by the original route goes back to the payer
                payee_account = payee_account or original.payer_account
                payee_name = payee_name or original.payer_name
            instruction = Instruction(
                slug=slug,
                id=submission.id,
                kind=submission.kind,
                account_no=submission.account_no,
                amount_fen=submission.amount_fen,
                payee_account=payee_account,
                payee_name=payee_name,
                memo=submission.memo,
                received_at=now,
                state=(
                    InstructionState.processing
                    if outcome is Outcome.accepted
                    else InstructionState.refused
                ),
                submissions=existing.submissions + 1 if existing else 1,
                accept_no=self.books.new_reference(now) if outcome is Outcome.accepted else "",
                reason=None if outcome is Outcome.accepted else outcome.value,
                origin=dict(submission.origin),
                original_reference=submission.original_reference,
            )
            self.books.instructions[(slug, submission.id)] = instruction
            return SubmitResult(outcome, instruction, queued)

    async def instructions(self, slug: str) -> list[dict[str, Any]]:
        self.bank(slug)
        async with self.books.lock:
            return [i.as_json() for (s, _), i in self.books.instructions.items() if s == slug]

    async def settle(
        self,
        *,
        slug: str,
        success: bool,
        instruction_ids: list[str] | None,
        fail_reason: str,
        copies: int,
        reversed_order: bool,
        deliver_now: bool,
    ) -> dict[str, Any]:
        """Execute processing instructions: success debits the escrow account, failure debits
        nothing. Results are pushed one message per instruction, in the order asked."""
        bank = self.bank(slug)
        dialect = self.dialect(bank)
        now = utcnow()
        messages: list[tuple[Instruction, Message | None]] = []
        async with self.books.lock:
            if instruction_ids is None:
                targets = [
                    i
                    for (s, _), i in self.books.instructions.items()
                    if s == slug and i.state is InstructionState.processing
                ]
            else:
                targets = []
                for instruction_id in instruction_ids:
                    found = self.instruction(slug, instruction_id)
                    if found is None or found.state is not InstructionState.processing:
                        raise SimError(409, f"instruction {instruction_id!r} is not processing")
                    targets.append(found)
            for instruction in targets:
                instruction.bank_reference = self.books.new_reference(now)
                account = self._account(slug, instruction.account_no)
                account.held_fen -= instruction.amount_fen
                if success:
                    account.book(
                        at=now,
                        direction=Direction.debit,
                        amount_fen=instruction.amount_fen,
                        reference=instruction.id,
                        counterparty_account=instruction.payee_account,
                        counterparty_name=instruction.payee_name,
                        memo=instruction.memo or instruction.kind.upper(),
                        bank_reference=instruction.bank_reference,
                    )
                    instruction.state = InstructionState.success
                else:
                    instruction.state = InstructionState.failed
                    instruction.reason = fail_reason
                message_id = new_message_id()
                outgoing = dialect.result(
                    bank, message_id=message_id, instruction=instruction, at=now
                )
                message = self._keep(message_id, slug, "result", outgoing) if outgoing else None
                messages.append((instruction, message))
            settled = [instruction.as_json() for instruction, _ in messages]
        if reversed_order:
            messages.reverse()
        deliveries = []
        for instruction, message in messages:
            if message is not None:
                sent = await self._deliver(message, copies) if deliver_now else []
                deliveries.append(
                    {"instruction_id": instruction.id, "message_id": message.id, "deliveries": sent}
                )
        return {"settled": settled, "messages": deliveries}

    async def return_payment(
        self, *, slug: str, instruction_id: str, reason: str, copies: int, deliver_now: bool
    ) -> dict[str, Any]:
        """退票: the money of a settled instruction comes back to the escrow account."""
        bank = self.bank(slug)
        dialect = self.dialect(bank)
        now = utcnow()
        async with self.books.lock:
            instruction = self.instruction(slug, instruction_id)
            if instruction is None:
                raise SimError(404, f"no instruction {instruction_id!r} at bank {slug!r}")
            if instruction.state is not InstructionState.success:
                raise SimError(409, f"instruction {instruction_id!r} is {instruction.state}")
            reference = self.books.new_reference(now)
            self._account(slug, instruction.account_no).book(
                at=now,
                direction=Direction.credit,
                amount_fen=instruction.amount_fen,
                reference=instruction.id,
                counterparty_account=instruction.payee_account,
                counterparty_name=instruction.payee_name,
                memo=f"RETURN {reason}",
                bank_reference=reference,
                return_reason=reason,
            )
            instruction.state = InstructionState.returned
            instruction.reason = reason
            message_id = new_message_id()
            outgoing = dialect.returned(
                bank,
                message_id=message_id,
                instruction=instruction,
                bank_reference=reference,
                at=now,
            )
            message = self._keep(message_id, slug, "return", outgoing) if outgoing else None
            returned = instruction.as_json()
        deliveries = await self._deliver(message, copies) if message and deliver_now else []
        return {
            "instruction": returned,
            "bank_reference": reference,
            "message_id": message.id if message else None,
            "deliveries": deliveries,
        }

    # --- messages to the service ---

    def _keep(self, message_id: str, slug: str, kind: str, outgoing: Outgoing) -> Message:
        message = Message(message_id, slug, kind, outgoing.body, outgoing.content_type)
        self.books.messages[message_id] = message
        return message

    async def messages(self) -> list[dict[str, Any]]:
        async with self.books.lock:
            return [message.as_json() for message in self.books.messages.values()]

    async def deliver(self, message_ids: list[str], copies: int) -> list[dict[str, Any]]:
        """Deliver held messages (or deliver sent ones again) one after another, in this order."""
        async with self.books.lock:
            unknown = [m for m in message_ids if m not in self.books.messages]
            if unknown:
                raise SimError(404, f"no messages {unknown}")
            messages = [self.books.messages[m] for m in message_ids]
        return [
            {"message_id": message.id, "deliveries": await self._deliver(message, copies)}
            for message in messages
        ]

    async def _deliver(self, message: Message, copies: int) -> list[dict[str, Any]]:
        """`copies` identical copies at once, as a bank that resends too eagerly would."""
        copies_sent = [self._deliver_copy(message) for _ in range(copies)]
        return list(await asyncio.gather(*copies_sent))

    async def _deliver_copy(self, message: Message) -> dict[str, Any]:
        """One copy, resent with a short backoff until the bank reads its success reply."""
        bank = self.bank(message.slug)
        dialect = self.dialect(bank)
        url = f"{self.config.service_url.rstrip('/')}/v1/banks/{message.slug}/notify"
        attempts: list[Attempt] = []
        for number in range(self.config.delivery_retries + 1):
            if number:
                await asyncio.sleep(self.config.delivery_backoff_seconds * 2 ** (number - 1))
            headers = {"Content-Type": message.content_type}
            headers.update(dialect.sign(bank, message.body, utcnow()))
            try:
                response = await self.client.post(url, content=message.body, headers=headers)
            except httpx.HTTPError as error:
                attempt, acknowledged = Attempt(None, f"{type(error).__name__}: {error}"), False
            else:
                attempt = Attempt(response.status_code, response.text)
                acknowledged = dialect.acknowledged(response.status_code, response.content)
            attempts.append(attempt)
            # Appending needs no lock: nothing awaits between reading and writing the list.
            message.attempts.append(attempt)
            if acknowledged:
                message.delivered = True
                break
        last = attempts[-1]
        return {
            "status_code": last.status_code,
            "body": last.body,
            "acknowledged": acknowledged,
            "attempts": [a.as_json() for a in attempts],
        }

    # --- statements ---

    async def statement(
        self, slug: str, account_no: str, day: date
    ) -> tuple[bytes, dict[str, str]]:
        """The day's statement file and the headers that go with it (type and signature)."""
        bank = self.bank(slug)
        dialect = self.dialect(bank)
        now = utcnow()
        async with self.books.lock:
            body = dialect.statement(bank, self._account(slug, account_no), day, now)
        headers = {"Content-Type": dialect.statement_content_type}
        headers.update(dialect.statement_headers(bank, body, now))
        return body, headers

    async def send_statement(self, slug: str, account_no: str, day: date) -> dict[str, Any]:
        body, headers = await self.statement(slug, account_no, day)
        url = f"{self.config.service_url.rstrip('/')}/v1/banks/{slug}/statements"
        response = await self.client.post(url, content=body, headers=headers)
        try:
            reply: Any = response.json()
        except ValueError:
            reply = response.text
        return {"status_code": response.status_code, "body": reply}
