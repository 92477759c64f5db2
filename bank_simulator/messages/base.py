"""What every bank's formats provide to the simulator."""

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import ClassVar

from app.kit.money import yuan
from bank_simulator.config import SimBank
from bank_simulator.state import Account, Instruction, Payment

# Our references are at most 32 characters of [A-Za-z0-9] (banks/README.md); a bank refuses others.
INSTRUCTION_ID = re.compile(r"[A-Za-z0-9]{1,32}")


class Unreadable(Exception):
    """An instruction the bank cannot read: refused, nothing recorded."""


@dataclass(frozen=True)
class Submission:
    """An instruction as the bank read it from our request."""

    id: str
    kind: str  # "payout" | "refund"
    account_no: str
    amount_fen: int
    payee_account: str
    payee_name: str
    memo: str
    # A refund by the original route names the payment by the bank's reference (seqId, serialNo);
    # the bank pays back whoever paid it.
    original_reference: str | None = None
    origin: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outgoing:
    """A message body the bank sends to the service, fixed across resends."""

    body: bytes
    content_type: str


class Dialect(ABC):
    # The status a payment notification carries when the control API names none.
    payment_success_status: ClassVar[str]
    # Statuses whose notification means the money arrived (the bank books a credit).
    crediting_statuses: ClassVar[frozenset[str]]
    # Whether the bank pushes instruction results (ums has them pulled with a query).
    pushes_results: ClassVar[bool] = True
    statement_content_type: ClassVar[str]

    def amount_text(self, fen: int) -> str:
        """An amount as the bank writes it in a notification: yuan with two decimals, by default."""
        return yuan(fen)

    @abstractmethod
    def payment(
        self,
        bank: SimBank,
        *,
        message_id: str,
        payment: Payment,
        status: str,
        amount_text: str,
        at: datetime,
    ) -> Outgoing: ...

    def result(
        self, bank: SimBank, *, message_id: str, instruction: Instruction, at: datetime
    ) -> Outgoing | None:
        """The pushed outcome of an executed instruction; None when the bank pushes none."""
        return None

    def returned(
        self,
        bank: SimBank,
        *,
        message_id: str,
        instruction: Instruction,
        bank_reference: str,
        at: datetime,
    ) -> Outgoing | None:
        """The notice that a settled instruction's money came back (退票); None when not pushed."""
        return None

    @abstractmethod
    def sign(self, bank: SimBank, body: bytes, now: datetime) -> dict[str, str]:
        """Headers that authenticate a body the bank sends, made anew for each attempt."""

    @abstractmethod
    def acknowledged(self, status_code: int, body: bytes) -> bool:
        """Whether the service's answer is the bank's success reply (else the bank resends)."""

    @abstractmethod
    def statement(self, bank: SimBank, account: Account, day: date, now: datetime) -> bytes:
        """The day's statement file, in the bank's exact format."""

    def statement_headers(self, bank: SimBank, body: bytes, now: datetime) -> dict[str, str]:
        """Headers that authenticate a statement file; most banks sign it as any message."""
        return self.sign(bank, body, now)
