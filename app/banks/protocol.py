"""What every bank adapter is, and the bank events it turns messages into.

An adapter is pure (STYLE rule 6): it verifies raw bytes, turns a bank's message into our events,
writes our instructions in the bank's format and reads the bank's answers. It opens no session and
makes no call; the inbox (`app/banks/inbox.py`) and the dispatch and poll jobs
(`app/banks/outbox.py`) do the I/O around it. A status an adapter does not know maps to pending,
never to success.
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

from app.models.instruction import InstructionKind, ResultStatus

# --- Inbound -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboundRequest:
    """A request from the bank, as received: header names in lower case, the body's exact bytes."""

    headers: Mapping[str, str]
    body: bytes
    received_at: datetime  # aware


class SignatureProblem(StrEnum):
    missing = "missing_signature"
    bad = "bad_signature"
    expired = "expired_signature"  # outside the bank's freshness window
    replayed = "replayed_signature"  # nonce already seen (found by the inbox, which keeps nonces)


class VerificationFailed(Exception):
    """The message failed its signature check: answer 401 with the bank's error reply, record a
    security event, act on nothing in it."""

    def __init__(self, problem: SignatureProblem, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem
        self.detail = detail


class MalformedMessage(Exception):
    """Signed correctly but not a message we can read (bad syntax, a missing field, an amount that is
    not an exact number of fen): answer 400 with the bank's error reply, record only the raw bytes."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def notified_fen(amount_fen: int, what: str) -> int:
    """An amount a bank notifies: money, so more than zero (a zero or negative one is no payment
    and no debit, and the message saying it is malformed)."""
    if amount_fen <= 0:
        raise MalformedMessage(f"{what} is {amount_fen} fen: not an amount of money")
    return amount_fen


@dataclass(frozen=True, slots=True)
class Verified:
    """A message whose signature holds. `nonce`, when the bank's scheme has one, must be recorded by
    the caller and refused when seen again within `nonce_ttl_seconds`."""

    nonce: str | None = None
    nonce_ttl_seconds: int = 0


@dataclass(frozen=True, slots=True)
class PaymentReceived:
    """Money that arrived in an escrow account, quoting (perhaps) one of our order numbers. Only a
    booked, successful credit becomes this event; anything less is a `Notice`."""

    account_no: str  # the escrow account
    order_no: str | None
    amount_fen: int
    bank_reference: str  # the bank's unique reference of the credit (seqId, AcctSvcrRef, serialNo)
    paid_at: datetime  # aware
    channel_order_id: str | None = None  # what a refund by the original route quotes (ums)
    # Who paid, where the bank says so (iso20022 RltdPties/Dbtr, gmbank payerName/payerAcct): a
    # refund by the original route goes back to them.
    payer_name: str | None = None
    payer_account_no: str | None = None


@dataclass(frozen=True, slots=True)
class InstructionResult:
    """What the bank says became of one of our instructions (a payout or a refund)."""

    instruction_id: str
    status: ResultStatus
    account_no: str | None = None  # the escrow account, when the message names it
    amount_fen: int | None = None
    reason: str | None = None  # the bank's reason for a failure or a return
    bank_reference: str | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """A message that moves no money (a status other than success, a pending entry, a debit we
    learn of): recorded and acknowledged, nothing else."""

    account_no: str | None
    description: str


@dataclass(frozen=True, slots=True)
class DebitBooked:
    """Money the bank booked out of an escrow account (iso20022 a `DBIT` `BOOK` entry, ums
    `TRADE_REFUND`). It must be one of our instructions; if it is none, money left without one."""

    account_no: str
    amount_fen: int
    description: str
    bank_reference: str | None = None
    instruction_id: str | None = None  # the reference the bank quotes (iso20022 EndToEndId)
    order_no: str | None = None  # the payment it pays back (ums merOrderId): a refund's order


BankEvent = PaymentReceived | InstructionResult | DebitBooked | Notice


@dataclass(frozen=True, slots=True)
class Notification:
    """One message from the bank: its id (stable across resends) and the events it carries."""

    message_id: str
    events: tuple[BankEvent, ...]


class ReplyKind(StrEnum):
    ok = "ok"
    bad_signature = "bad_signature"  # HTTP 401
    malformed = "malformed"  # HTTP 400
    # Signed and readable, but it speaks for another bank's account or instruction. The specs name
    # no reply for it: it gets the error reply of a message we cannot take (400).
    refused = "refused"


@dataclass(frozen=True, slots=True)
class Reply:
    """The exact HTTP answer the bank expects."""

    status_code: int
    body: bytes
    media_type: str


# --- Statements ----------------------------------------------------------------------------------


class Direction(StrEnum):
    credit = "credit"  # money into the escrow account
    debit = "debit"  # money out of it


@dataclass(slots=True)
class StatementLine:
    """One booked movement of the escrow account on the statement's day, as the bank lists it.
    Not frozen, though nothing changes a line once read: a busy day's reader makes a million of
    them, and a frozen dataclass costs four times as much to make (one `object.__setattr__` per
    field)."""

    number: int  # where it stands in the file (line or row, 1-based): named in errors and breaks
    bank_reference: str  # the bank's serial of the movement (seqId, AcctSvcrRef, 流水号)
    booked_at: datetime  # aware
    direction: Direction
    amount_fen: int  # more than zero
    # What it quotes: a payment's order number, or our instruction id for a payout, a refund or
    # the return of one (ums reference, iso20022 EndToEndId, gmbank 业务参考号).
    reference: str | None
    counterparty_account_no: str | None
    counterparty_name: str | None
    memo: str | None
    returned: bool = False  # 退票: a credit giving back a payout or refund (memo RETURN, RtrInf)
    # The account's balance after it, where the format prints one (ums, gmbank; camt.053 does not).
    balance_after_fen: int | None = None


@dataclass(frozen=True, slots=True)
class StatementSummary:
    """What the statement says of the account and the day, whatever the order the format gives it
    in (ums at the top, gmbank at the bottom)."""

    account_no: str
    day: date  # the business day the statement covers
    opening_fen: int  # may be negative only if the bank says so; an escrow account never is
    closing_fen: int
    lines: int  # detail lines read
    credits_fen: int  # sums of the detail lines read
    debits_fen: int


class StatementMalformed(MalformedMessage):
    """A statement file that does not parse: `line` names the line or row (1-based) when there is
    one, so the bank or the operator can find it."""

    def __init__(self, detail: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {detail}" if line is not None else detail)
        self.line = line


class StatementReader(Protocol):
    """Reads one statement file as it streams in: `lines()` yields each detail line once, in file
    order, holding no more than a few lines in memory; `heading()`, the account and the day, is
    known once the first line is yielded (or `lines()` is exhausted, for a day without lines);
    `summary()` once `lines()` is exhausted. `lines()` and `summary()` raise StatementMalformed."""

    def lines(self) -> Iterator[StatementLine]: ...

    def heading(self) -> tuple[str, date] | None: ...

    def summary(self) -> StatementSummary: ...


# --- Outbound ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboundInstruction:
    """One of our payout or refund instructions, with what every bank needs to execute it."""

    id: str  # at most 32 characters of [A-Za-z0-9]; the bank's reference for it
    kind: InstructionKind
    amount_fen: int
    escrow_account_no: str
    # None for a refund of a payment whose notification named no payer account: the bank routes
    # it by the payment's reference.
    payee_account_no: str | None
    payee_name: str
    memo: str
    created_at: datetime  # aware
    # For a refund by the original route: the payment's order and the bank's references of it.
    order_no: str | None = None
    payment_reference: str | None = None  # seqId (ums), serialNo (gmbank), AcctSvcrRef (iso20022)
    payment_channel_order_id: str | None = None  # targetOrderId (ums)


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """An HTTP request to the bank; `path` is joined to the bank's configured base URL."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class BankResponse:
    status_code: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes
    received_at: datetime


class SubmitStatus(StrEnum):
    accepted = "accepted"
    duplicate = "duplicate"  # the bank already has this id: the earlier request stands
    refused = "refused"  # a definite no: the money never leaves
    unclear = "unclear"  # query before any resend


@dataclass(frozen=True, slots=True)
class SubmitAnswer:
    status: SubmitStatus
    code: str | None = None  # the bank's code, for the record
    detail: str | None = None


class QueryStatus(StrEnum):
    not_found = "not_found"  # the bank never got it: resend with the same id
    processing = "processing"
    settled = "settled"
    failed = "failed"
    returned = "returned"
    unclear = "unclear"  # no usable answer: ask again later


@dataclass(frozen=True, slots=True)
class QueryAnswer:
    status: QueryStatus
    code: str | None = None
    detail: str | None = None


# --- The adapter ---------------------------------------------------------------------------------


class BankAdapter(Protocol):
    """One per bank interface. `config` is always an instance of `config_model`, validated when the
    operator set it (PUT /v1/banks/{slug})."""

    name: ClassVar[str]  # "ums", "iso20022", "gmbank"
    config_model: ClassVar[type[BaseModel]]
    # Whether the bank reports outcomes only when asked (ums), so the poll job must ask.
    results_by_query: ClassVar[bool]

    def verify(self, config: Any, request: InboundRequest) -> Verified:
        """Check the signature (and freshness) of an inbound request; raise VerificationFailed."""
        ...

    def parse_notification(self, request: InboundRequest) -> Notification:
        """Read a verified notification or result; raise MalformedMessage."""
        ...

    def reply(self, kind: ReplyKind) -> Reply:
        """The bank's exact reply for a notification that was recorded, badly signed or malformed."""
        ...

    def verify_statement(self, config: Any, request: InboundRequest) -> Verified:
        """Check the signature of a statement file (ums: X-File-Signature, SHA256withRSA over the
        file's bytes with the bank's key; the others: as a notification); raise
        VerificationFailed."""
        ...

    def read_statement(self, chunks: Iterable[bytes]) -> StatementReader:
        """A reader of a verified statement file given as chunks of its bytes (any sizes)."""
        ...

    def submit_request(
        self, config: Any, instruction: OutboundInstruction, now: datetime
    ) -> OutboundRequest:
        """The signed request that asks the bank to execute `instruction`."""
        ...

    def read_submit(self, config: Any, response: BankResponse) -> SubmitAnswer:
        """The bank's answer to a submission. A response that fails its signature is unclear."""
        ...

    def query_request(
        self, config: Any, instruction: OutboundInstruction, now: datetime
    ) -> OutboundRequest | None:
        """The signed request that asks what became of `instruction`; None when the bank has no
        query (then a resend with the same id is the query: the bank answers "duplicate")."""
        ...

    def read_query(
        self, config: Any, instruction: OutboundInstruction, response: BankResponse
    ) -> QueryAnswer:
        """The bank's answer to a query. A response that fails its signature is unclear."""
        ...
