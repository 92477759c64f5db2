"""The bank's books, in memory: escrow accounts with their transactions, the instructions it
received, and the messages it sends. All changes happen under `Bank.lock` (one asyncio.Lock for the
whole simulator), so a balance and the instructions held against it always change together.
"""

import asyncio
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from app.kit.clock import SHANGHAI


class Direction(StrEnum):
    credit = "C"
    debit = "D"


class InstructionState(StrEnum):
    processing = "processing"  # accepted, not executed: counts against the available balance
    success = "success"
    failed = "failed"
    returned = "returned"  # 退票: it left and came back
    refused = "refused"  # answered with a refusal; a later submission with the id is looked at anew


class Behaviour(StrEnum):
    accept = "accept"
    refuse = "refuse"
    insufficient = "insufficient"
    execute_then_timeout = "execute_then_timeout"
    execute_then_502 = "execute_then_502"
    drop_before_execute = "drop_before_execute"


@dataclass
class Transaction:
    seq: int
    booked_at: datetime
    direction: Direction
    amount_fen: int
    balance_after_fen: int
    reference: str  # order_no of a payment, instruction id of a payout, refund or return
    counterparty_account: str
    counterparty_name: str
    memo: str
    bank_reference: str  # seqId / AcctSvcrRef / serialNo
    return_reason: str | None = None  # on the credit of a 退票, the bank's reason code

    def signed_fen(self) -> int:
        return self.amount_fen if self.direction is Direction.credit else -self.amount_fen

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "booked_at": self.booked_at.isoformat(),
            "direction": self.direction.value,
            "amount_fen": self.amount_fen,
            "balance_after_fen": self.balance_after_fen,
            "reference": self.reference,
            "counterparty_account": self.counterparty_account,
            "counterparty_name": self.counterparty_name,
            "memo": self.memo,
            "bank_reference": self.bank_reference,
        }


@dataclass
class Account:
    slug: str
    account_no: str
    name: str
    opening_balance_fen: int  # what the account held when it was opened, before any transaction
    balance_fen: int
    # Accepted instructions not yet executed: not debited, but no longer available to pay out.
    held_fen: int = 0
    transactions: list[Transaction] = field(default_factory=list)

    @property
    def available_fen(self) -> int:
        return self.balance_fen - self.held_fen

    def book(
        self,
        *,
        at: datetime,
        direction: Direction,
        amount_fen: int,
        reference: str,
        counterparty_account: str,
        counterparty_name: str,
        memo: str,
        bank_reference: str,
        return_reason: str | None = None,
    ) -> Transaction:
        self.balance_fen += amount_fen if direction is Direction.credit else -amount_fen
        transaction = Transaction(
            seq=len(self.transactions) + 1,
            booked_at=at.astimezone(SHANGHAI),
            direction=direction,
            amount_fen=amount_fen,
            balance_after_fen=self.balance_fen,
            reference=reference,
            counterparty_account=counterparty_account,
            counterparty_name=counterparty_name,
            memo=memo,
            bank_reference=bank_reference,
            return_reason=return_reason,
        )
        self.transactions.append(transaction)
        return transaction

    def day(self, day: date) -> tuple[int, list[Transaction], int]:
        """Opening balance, the transactions booked on `day` (Shanghai), closing balance."""
        before = sum(t.signed_fen() for t in self.transactions if t.booked_at.date() < day)
        lines = [t for t in self.transactions if t.booked_at.date() == day]
        opening = self.opening_balance_fen + before
        return opening, lines, opening + sum(t.signed_fen() for t in lines)


@dataclass
class Payment:
    """A credit the bank notified: what a refund by the original route quotes."""

    slug: str
    account_no: str
    order_no: str
    amount_fen: int
    bank_reference: str
    channel_order_id: str
    payer_name: str
    payer_account: str


@dataclass
class Instruction:
    slug: str
    id: str
    kind: str  # "payout" | "refund"
    account_no: str
    amount_fen: int
    payee_account: str
    payee_name: str
    memo: str
    received_at: datetime
    state: InstructionState = InstructionState.processing
    submissions: int = 1
    accept_no: str = ""
    reason: str | None = None
    bank_reference: str | None = None  # of the debit once executed
    # What a bank's result must quote back (iso20022: the pain.001's MsgId and PmtInfId), and what
    # a refund quoted of its payment (ums: origTargetOrderId).
    origin: dict[str, str] = field(default_factory=dict)
    original_reference: str | None = None  # a refund's payment: seqId, AcctSvcrRef, serialNo

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "account_no": self.account_no,
            "amount_fen": self.amount_fen,
            "status": self.state.value,
            "submissions": self.submissions,
            "payee": {"account_no": self.payee_account, "name": self.payee_name},
            "memo": self.memo,
            "reason": self.reason,
            "bank_reference": self.bank_reference,
            "original_reference": self.original_reference,
            "origin": self.origin,
        }


@dataclass(frozen=True)
class Attempt:
    status_code: int | None  # None: no HTTP answer (connection refused, timeout)
    body: str

    def as_json(self) -> dict[str, Any]:
        return {"status_code": self.status_code, "body": self.body}


@dataclass
class Message:
    """A notification or result the bank sends to the service. The body is fixed (a resend is the
    same message); headers are made per attempt, as some schemes need a fresh timestamp."""

    id: str
    slug: str
    kind: str  # "payment", "result", "return"
    body: bytes
    content_type: str
    delivered: bool = False
    attempts: list[Attempt] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "kind": self.kind,
            "delivered": self.delivered,
            "attempts": len(self.attempts),
        }


@dataclass(frozen=True)
class QueuedBehaviour:
    behaviour: Behaviour
    hang_seconds: float


@dataclass
class Books:
    """Everything the simulated banks hold, keyed by bank slug."""

    accounts: dict[tuple[str, str], Account] = field(default_factory=dict)
    instructions: dict[tuple[str, str], Instruction] = field(default_factory=dict)
    payments: dict[tuple[str, str], Payment] = field(default_factory=dict)  # by bank_reference
    messages: dict[str, Message] = field(default_factory=dict)
    behaviours: dict[str, deque[QueuedBehaviour]] = field(default_factory=dict)
    nonces: dict[str, datetime] = field(default_factory=dict)  # gmbank nonces seen, by first use
    references: set[str] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def new_reference(self, now: datetime) -> str:
        """A bank reference unique in this run and, by its time and random part, across restarts
        against the same service: 22 digits."""
        while True:
            reference = f"{now.astimezone(SHANGHAI):%Y%m%d%H%M%S}{secrets.randbelow(10**8):08d}"
            if reference not in self.references:
                self.references.add(reference)
                return reference

    def next_behaviour(self, slug: str) -> QueuedBehaviour | None:
        queue = self.behaviours.get(slug)
        return queue.popleft() if queue else None


def new_message_id() -> str:
    return secrets.token_hex(16)
