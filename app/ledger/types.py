"""The ledger's vocabulary: account kinds, entry drafts and what posting returns."""

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import IntEnum, StrEnum
from uuid import UUID

from app.kit.money import is_fen
from app.ledger.errors import InvalidAmount


class Side(IntEnum):
    """Which raw sign makes an account's balance grow: debits are positive, credits negative."""

    debit = 1
    credit = -1


class AccountKind(StrEnum):
    """The accounts DOMAIN.md names. Escrow cash is the money at the bank; everything else says whose
    it is, so that escrow cash = prepaid + releasable + in transit + suspense + own funds."""

    escrow_cash = "escrow_cash"
    prepaid = "prepaid"  # one per enrollment: paid, not yet released
    releasable = "releasable"  # confirmed lessons, waiting for the payout batch
    payout_in_transit = "payout_in_transit"
    refund_in_transit = "refund_in_transit"
    suspense = "suspense"  # at the bank, matching no order
    own_funds = "own_funds"  # the institution's top-up towards its floor

    @property
    def normal(self) -> Side:
        return Side.debit if self is AccountKind.escrow_cash else Side.credit


class TransferStatus(StrEnum):
    pending = "pending"
    posted = "posted"
    voided = "voided"


@dataclass(frozen=True, slots=True)
class Account:
    institution_id: UUID
    id: UUID
    code: str
    kind: AccountKind
    normal: Side
    lower_limit_fen: int | None
    balance_fen: int  # raw: debits minus credits

    @property
    def normal_balance_fen(self) -> int:
        """The balance as the account's kind reads it (a liability's credit balance is positive)."""
        return self.balance_fen * self.normal


@dataclass(frozen=True, slots=True)
class Posting:
    account_id: UUID
    amount_fen: int  # signed: debit positive, credit negative

    @classmethod
    def debit(cls, account_id: UUID, amount_fen: int) -> "Posting":
        return cls(account_id, _positive(amount_fen))

    @classmethod
    def credit(cls, account_id: UUID, amount_fen: int) -> "Posting":
        return cls(account_id, -_positive(amount_fen))


def _positive(amount_fen: int) -> int:
    """A debit or a credit is a positive amount; its side gives the sign."""
    if not is_fen(amount_fen) or amount_fen <= 0:
        raise InvalidAmount(
            f"amount_fen must be a positive whole number of fen, got {amount_fen!r}"
        )
    return amount_fen


@dataclass(frozen=True, slots=True)
class EntryDraft:
    """What a caller asks the ledger to record. `idempotency_key` is unique per institution: posting
    the same draft again returns the first entry."""

    idempotency_key: str
    kind: str
    postings: tuple[Posting, ...]
    memo: str | None = None

    @classmethod
    def transfer(
        cls,
        idempotency_key: str,
        kind: str,
        debit: UUID,
        credit: UUID,
        amount_fen: int,
        memo: str | None = None,
    ) -> "EntryDraft":
        """The common two-line entry: `amount_fen` debited to one account and credited to another."""
        return cls(
            idempotency_key,
            kind,
            (Posting.debit(debit, amount_fen), Posting.credit(credit, amount_fen)),
            memo,
        )


@dataclass(frozen=True, slots=True)
class PostedEntry:
    institution_id: UUID
    seq: int
    idempotency_key: str
    kind: str
    memo: str | None
    posted_at: datetime
    postings: tuple[Posting, ...]
    hash: str
    replayed: bool = False  # True when the key had been posted before and nothing changed


@dataclass(frozen=True, slots=True)
class Transfer:
    institution_id: UUID
    id: UUID
    source_account_id: UUID
    transit_account_id: UUID
    settle_account_id: UUID
    amount_fen: int
    status: TransferStatus
    reserve_seq: int
    resolve_seq: int | None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """An institution's journal head as published on a day (Asia/Shanghai)."""

    institution_id: UUID
    day: date
    seq: int
    hash: str
    taken_at: datetime


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Whether an institution's ledger is intact; when not, the first thing found wrong: an entry
    altered or missing (also against a checkpoint), a balance, a transfer or an enrollment that
    disagrees with the journal."""

    institution_id: UUID
    intact: bool
    entries_checked: int
    verified_through_seq: int  # every entry up to this one is as it was written
    head_seq: int
    first_bad_seq: int | None = None
    problem: str | None = None
    balance_mismatches: dict[UUID, tuple[int, int]] = field(default_factory=dict)
    transfer_id: UUID | None = None  # the first transfer that disagrees with its entries
    enrollment_id: UUID | None = None  # the first enrollment whose counters disagree
    checkpoint_day: date | None = None  # the checkpoint the journal no longer agrees with
