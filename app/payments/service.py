"""Payments in: crediting an enrollment from a bank event that was already verified (the bank
adapters call `credit_payment` after checking the notification's signature, or reconciliation after
matching a statement line). Money is credited to a student only this way (DOMAIN.md rule 5).

Money that matches no order as it stands (unknown order, another amount, an order already paid,
cancelled or expired) is never dropped: it is posted to the institution's suspense account and
flagged with a SuspenseItem for someone to resolve.

Each bank payment (bank_slug, bank_reference) has one effect, however often it is notified: the
enrollment's row lock, then the institution's ledger lock, serialise notifications of one order and
of one institution, and under them the earlier outcome, if any, is found and returned again. (The
lock order, enrollment before ledger, is the one lessons and refunds take too.)
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.enrollments.repository import locked_by_order_no, locked_by_order_nos_of, set_paid
from app.kit.clock import as_utc, utcnow
from app.kit.money import is_fen
from app.ledger import service as ledger
from app.ledger.books import Books, posted_and_books, posted_and_books_of
from app.ledger.errors import LedgerError
from app.ledger.repository import LockedRead
from app.ledger.types import Account, EntryDraft
from app.models import Enrollment, Institution, SuspenseItem
from app.models.enrollment import EnrollmentStatus
from app.models.reconciliation import BreakType
from app.models.suspense_item import SuspenseReason
from app.payments.errors import ForeignEscrowAccount, InvalidBankPayment, UnknownEscrowAccount
from app.reconciliation import breaks

MAX_REFERENCE_LENGTH = 64  # SuspenseItem.bank_reference
MAX_ORDER_NO_LENGTH = 32  # Enrollment.order_no: a longer one is no order of ours
# Enrollment.payment_payer_name and payment_payer_account_no. One that does not fit is not kept
# (cut, it would name someone else): the refund then goes by the payment's reference alone.
MAX_PAYER_NAME_LENGTH = 100
MAX_PAYER_ACCOUNT_LENGTH = 40


@dataclass(frozen=True, slots=True)
class BankPayment:
    """Money the bank says arrived in an escrow account, quoting (perhaps) one of our order numbers."""

    bank_slug: str
    bank_reference: str
    escrow_account_no: str
    order_no: str | None
    amount_fen: int
    paid_at: datetime
    channel_order_id: str | None = None  # what a refund by the original route quotes (ums)
    payer_name: str | None = None  # who paid, where the bank says: the refund goes back to them
    payer_account_no: str | None = None


class PaymentResult(StrEnum):
    credited = "credited"
    suspense = "suspense"


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    result: PaymentResult
    institution_id: UUID
    ledger_seq: int
    enrollment_id: UUID | None = None  # credited
    reason: SuspenseReason | None = None  # suspense
    suspense_item_id: UUID | None = None  # suspense
    replayed: bool = False  # True when this payment had been handled before and nothing changed


def payment_key(payment: BankPayment) -> str:
    return f"payment:{payment.bank_slug}:{payment.bank_reference}"


def suspense_key(payment: BankPayment) -> str:
    return f"suspense:{payment.bank_slug}:{payment.bank_reference}"


def _check(payment: BankPayment) -> None:
    if not (is_fen(payment.amount_fen) and payment.amount_fen > 0):
        raise InvalidBankPayment(f"amount_fen must be a positive int, got {payment.amount_fen!r}")
    if not 1 <= len(payment.bank_reference) <= MAX_REFERENCE_LENGTH:
        raise InvalidBankPayment(f"bank_reference must have 1 to {MAX_REFERENCE_LENGTH} characters")
    if payment.paid_at.tzinfo is None:
        raise InvalidBankPayment("paid_at must carry its time zone")


async def credit_payment(session: AsyncSession, payment: BankPayment) -> PaymentOutcome:
    """Credit the order the payment quotes, or hold the money in suspense; see the module doc."""
    _check(payment)
    institution = await session.scalar(
        select(Institution).where(Institution.escrow_account_no == payment.escrow_account_no)
    )
    if institution is None:
        raise UnknownEscrowAccount(f"no institution has escrow account {payment.escrow_account_no}")
    if institution.bank_slug != payment.bank_slug:
        # A bank speaks only for its own accounts (the inbox refuses such a message before this).
        raise ForeignEscrowAccount(
            f"escrow account {payment.escrow_account_no} is held at bank "
            f"{institution.bank_slug!r}, not {payment.bank_slug!r}"
        )
    enrollment = None
    if payment.order_no and len(payment.order_no) <= MAX_ORDER_NO_LENGTH:
        enrollment = await locked_by_order_no(session, institution.id, payment.order_no)
    connection = await session.connection()
    await ledger.lock(connection, institution.id)
    # Under the lock, in one read: this payment's entries if handled before, and the accounts any
    # outcome posts to.
    posted, books, accounts = await posted_and_books(
        connection,
        institution.id,
        [payment_key(payment), suspense_key(payment)],
        [] if enrollment is None else [enrollment.id],
    )
    prepaid = accounts[0] if accounts else None

    earlier = await _earlier_outcome(session, institution.id, enrollment, payment, posted)
    reason = _mismatch(enrollment, payment)
    if earlier is not None:
        if reason is None and earlier.result is PaymentResult.suspense:
            assert prepaid is not None  # an enrollment was found
            return await _allocate(session, books, prepaid, enrollment, payment, earlier)
        return earlier
    if reason is None:
        assert enrollment is not None and prepaid is not None
        entry = await ledger.post(
            connection, institution.id, _credit_draft(payment, books, prepaid, enrollment)
        )
        _mark_paid(enrollment, payment)
        await session.flush()
        return PaymentOutcome(
            PaymentResult.credited, institution.id, entry.seq, enrollment_id=enrollment.id
        )
    return await _hold(session, books, payment, reason)


def _credit_draft(
    payment: BankPayment, books: Books, prepaid: Account, enrollment: Enrollment
) -> EntryDraft:
    """The entry crediting `payment` to the order it quotes: escrow cash to its prepaid account."""
    return EntryDraft.transfer(
        payment_key(payment),
        "payment",
        books.escrow_cash.id,
        prepaid.id,
        payment.amount_fen,
        memo=f"order {enrollment.order_no}",
    )


async def credit_matching_payments(
    session: AsyncSession, holders: Mapping[str, Institution], payments: Sequence[BankPayment]
) -> list[PaymentOutcome | None]:
    """Credit together, in one round of statements and one ledger write, those of these payments
    (in the order received) that `credit_payment` would credit straight to the order they quote:
    the busy day's common case. Each of the others gets None, for the caller to hand to
    `credit_payment` afterwards (suspense, an allocation, a replay, a refusal).

    A payment is taken here only when no earlier payment of the batch quotes its order or has its
    bank reference, so that whatever credit_payment does afterwards to the rest happens to each
    order in the order received, as it would have one by one.

    `holders` names the institution holding each escrow account, its row locked by the caller (an
    account no institution holds is absent: credit_payment says so). The payments may be into
    several institutions' accounts: their enrollments, ledger locks and reads are then taken
    together (in institution id order) and their entries written at once, in the caller's one
    transaction; a caller confined to one institution (a deployment sharded by institution) hands
    it one institution's payments."""
    outcomes: list[PaymentOutcome | None] = [None] * len(payments)
    indexes: dict[UUID, list[int]] = {}
    institutions: dict[UUID, Institution] = {}
    for index, payment in enumerate(payments):
        holder = holders.get(payment.escrow_account_no)
        if holder is not None:
            indexes.setdefault(holder.id, []).append(index)
            institutions[holder.id] = holder
    if not indexes:
        return outcomes
    enrollments = await locked_by_order_nos_of(
        session,
        {
            institution_id: {
                order_no
                for order_no in (payments[index].order_no for index in listed)
                if order_no and len(order_no) <= MAX_ORDER_NO_LENGTH
            }
            for institution_id, listed in sorted(indexes.items())
        },
    )
    connection = await session.connection()
    # Under the locks, in one read: the payments' entries if handled before, the books, and the
    # prepaid account of every order they quote (each enrollment has had one since it was made).
    by_order: dict[UUID, dict[str, Enrollment]] = {institution_id: {} for institution_id in indexes}
    for (institution_id, order_no), enrollment in enrollments.items():
        by_order[institution_id][order_no] = enrollment
    found = {institution_id: list(of.values()) for institution_id, of in by_order.items()}
    read = await posted_and_books_of(
        connection,
        {
            institution_id: (
                [
                    key
                    for index in listed
                    for key in (payment_key(payments[index]), suspense_key(payments[index]))
                ],
                [enrollment.id for enrollment in found[institution_id]],
            )
            for institution_id, listed in sorted(indexes.items())
        },
    )
    batches: dict[UUID, tuple[list[EntryDraft], LockedRead]] = {}
    chosen: dict[UUID, list[tuple[int, BankPayment, Enrollment]]] = {}
    for institution_id, listed in indexes.items():
        books_read = read[institution_id]
        if books_read is None:
            continue  # an account not open yet: credit_payment opens it
        locked, books, prepaid = books_read
        account_of = {
            enrollment.id: account
            for enrollment, account in zip(found[institution_id], prepaid, strict=True)
        }
        straight = [
            (listed[at], payment, enrollment)
            for at, payment, enrollment in _straight_credits(
                institutions[institution_id],
                by_order[institution_id],
                locked.posted,
                [payments[index] for index in listed],
            )
        ]
        if straight:
            chosen[institution_id] = straight
            batches[institution_id] = (
                [
                    _credit_draft(payment, books, account_of[enrollment.id], enrollment)
                    for _, payment, enrollment in straight
                ],
                locked,
            )
    if not batches:
        return outcomes
    posted = await ledger.post_many_read(connection, batches)
    paid: list[tuple[Enrollment, dict[str, Any]]] = []
    for institution_id, straight in chosen.items():
        for (index, payment, enrollment), result in zip(
            straight, posted[institution_id], strict=True
        ):
            if isinstance(result, LedgerError):
                raise result  # nothing of the batch stays: the caller applies it one by one
            paid.append((enrollment, paid_values(payment)))
            outcomes[index] = PaymentOutcome(
                PaymentResult.credited, institution_id, result.seq, enrollment_id=enrollment.id
            )
    await set_paid(session, paid)
    return outcomes


def _straight_credits(
    institution: Institution,
    enrollments: Mapping[str, Enrollment],
    posted: Mapping[str, object],
    payments: Sequence[BankPayment],
) -> list[tuple[int, BankPayment, Enrollment]]:
    """The payments of the batch that credit the order they quote, first of their order and bank
    reference in the batch, never handled before: with their place in the batch and enrollment."""
    chosen: list[tuple[int, BankPayment, Enrollment]] = []
    orders_seen: set[str | None] = set()
    references_seen: set[str] = set()
    for index, payment in enumerate(payments):
        first = (
            payment.order_no not in orders_seen and payment.bank_reference not in references_seen
        )
        orders_seen.add(payment.order_no)
        references_seen.add(payment.bank_reference)
        enrollment = enrollments.get(payment.order_no or "")
        if (
            first
            and enrollment is not None
            and institution.bank_slug == payment.bank_slug
            and _valid(payment)
            and payment_key(payment) not in posted
            and suspense_key(payment) not in posted
            and _mismatch(enrollment, payment) is None
        ):
            chosen.append((index, payment, enrollment))
    return chosen


def _valid(payment: BankPayment) -> bool:
    try:
        _check(payment)
    except InvalidBankPayment:
        return False
    return True


async def _allocate(
    session: AsyncSession,
    books: Books,
    prepaid: Account,
    enrollment: Enrollment | None,
    payment: BankPayment,
    held: PaymentOutcome,
) -> PaymentOutcome:
    """Money held in suspense whose bank payment now names an order it pays (a statement line
    quoting no order credited it before its notification came): moved from suspense to the
    enrollment, once, and the statement's break for it closed."""
    assert enrollment is not None and held.suspense_item_id is not None
    institution_id = books.institution_id
    item = await session.get_one(
        SuspenseItem, (institution_id, held.suspense_item_id), with_for_update=True
    )
    if item.resolved_at is not None or item.amount_fen != payment.amount_fen:
        return held
    entry = await ledger.post(
        await session.connection(),
        institution_id,
        EntryDraft.transfer(
            f"allocated:{payment.bank_slug}:{payment.bank_reference}",
            "suspense_allocated",
            books.suspense.id,
            prepaid.id,
            payment.amount_fen,
            memo=f"order {enrollment.order_no}, named by the bank's notification",
        ),
    )
    _mark_paid(enrollment, payment)
    now = utcnow()
    item.resolved_at = now
    await breaks.close(
        session,
        await breaks.open_breaks(
            session,
            institution_id,
            types=[BreakType.missing_in_ledger],
            bank_reference=payment.bank_reference,
        ),
        by="bank notification",
        note=f"the bank's notification names order {enrollment.order_no}: moved from suspense "
        f"to enrollment {enrollment.id}",
        now=now,
    )
    await session.flush()
    return PaymentOutcome(
        PaymentResult.credited, institution_id, entry.seq, enrollment_id=enrollment.id
    )


def _mark_paid(enrollment: Enrollment, payment: BankPayment) -> None:
    for name, value in paid_values(payment).items():
        setattr(enrollment, name, value)


def paid_values(payment: BankPayment) -> dict[str, Any]:
    """What crediting `payment` to its order sets on the enrollment (PAID_COLUMNS)."""
    return {
        "status": EnrollmentStatus.active,
        "paid_fen": payment.amount_fen,
        "paid_at": payment.paid_at,
        "payment_reference": payment.bank_reference,
        "payment_channel_order_id": payment.channel_order_id,
        "payment_payer_name": _fitting(payment.payer_name, MAX_PAYER_NAME_LENGTH),
        "payment_payer_account_no": _fitting(payment.payer_account_no, MAX_PAYER_ACCOUNT_LENGTH),
        "updated_at": utcnow(),
    }


async def _hold(
    session: AsyncSession, books: Books, payment: BankPayment, reason: SuspenseReason
) -> PaymentOutcome:
    """The money into suspense, flagged."""
    institution_id = books.institution_id
    entry = await ledger.post(
        await session.connection(),
        institution_id,
        EntryDraft.transfer(
            suspense_key(payment),
            "suspense",
            books.escrow_cash.id,
            books.suspense.id,
            payment.amount_fen,
            memo=f"{reason}: order {payment.order_no!r}"[:500],
        ),
    )
    item = SuspenseItem(
        institution_id=institution_id,
        id=uuid4(),
        bank_slug=payment.bank_slug,
        bank_reference=payment.bank_reference,
        order_no=_storable(payment.order_no),
        amount_fen=payment.amount_fen,
        reason=reason,
        ledger_seq=entry.seq,
        received_at=payment.paid_at,
    )
    session.add(item)
    await session.flush()
    return PaymentOutcome(
        PaymentResult.suspense, institution_id, entry.seq, reason=reason, suspense_item_id=item.id
    )


def _fitting(text: str | None, length: int) -> str | None:
    return text if text is not None and len(text) <= length else None


def _storable(order_no: str | None) -> str | None:
    """The quoted order number if it fits the column; a longer one is kept in the entry's memo."""
    return _fitting(order_no, MAX_ORDER_NO_LENGTH)


def _mismatch(enrollment: Enrollment | None, payment: BankPayment) -> SuspenseReason | None:
    """Why the payment cannot be credited to the order it quotes, or None when it can."""
    if enrollment is None:
        return SuspenseReason.unknown_order
    if enrollment.paid_fen > 0:
        return SuspenseReason.already_paid
    if enrollment.status != EnrollmentStatus.awaiting_payment or payment.paid_at >= as_utc(
        enrollment.expires_at
    ):
        return SuspenseReason.not_awaiting_payment
    if payment.amount_fen != enrollment.amount_fen:
        return SuspenseReason.amount_mismatch
    return None


async def _earlier_outcome(
    session: AsyncSession,
    institution_id: UUID,
    enrollment: Enrollment | None,
    payment: BankPayment,
    posted: dict[str, int],
) -> PaymentOutcome | None:
    """The outcome of this same bank payment handled before, from its entries `posted` (read
    under the ledger lock, by key, with their seq): credited, or held, whose suspense item was
    written with its entry."""
    credited, held = payment_key(payment), suspense_key(payment)
    if credited in posted:
        return PaymentOutcome(
            PaymentResult.credited,
            institution_id,
            posted[credited],
            enrollment_id=None if enrollment is None else enrollment.id,
            replayed=True,
        )
    if held not in posted:
        return None
    item = await session.scalar(
        select(SuspenseItem).where(
            SuspenseItem.institution_id == institution_id,
            SuspenseItem.bank_slug == payment.bank_slug,
            SuspenseItem.bank_reference == payment.bank_reference,
        )
    )
    if item is None:
        return None
    return PaymentOutcome(
        PaymentResult.suspense,
        institution_id,
        item.ledger_seq,
        reason=SuspenseReason(item.reason),
        suspense_item_id=item.id,
        replayed=True,
    )
