"""An institution's standard accounts, by role, as the lifecycle uses them."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from app.ledger.repository import LockedRead
from app.ledger.service import (
    AccountSpec,
    open_accounts,
    posted_and_open_accounts,
    prepaid_spec,
    read_locked,
)
from app.ledger.types import Account, AccountKind

INSTITUTION_KINDS = (
    AccountKind.escrow_cash,
    AccountKind.releasable,
    AccountKind.payout_in_transit,
    AccountKind.refund_in_transit,
    AccountKind.suspense,
    AccountKind.own_funds,
)


@dataclass(frozen=True, slots=True)
class Books:
    institution_id: UUID
    escrow_cash: Account
    releasable: Account
    payout_in_transit: Account
    refund_in_transit: Account
    suspense: Account
    own_funds: Account


async def institution_books(connection: AsyncConnection, institution_id: UUID) -> Books:
    """Open (once) and return the institution's accounts; cheap to call again."""
    opened = await open_accounts(
        connection, institution_id, [AccountSpec(kind) for kind in INSTITUTION_KINDS]
    )
    return Books(institution_id, *opened)


async def books_and_enrollment_accounts(
    connection: AsyncConnection, institution_id: UUID, enrollment_ids: Sequence[UUID]
) -> tuple[Books, list[Account]]:
    """`institution_books` and the prepaid account of each of `enrollment_ids`, in order, in one
    read."""
    opened = await open_accounts(connection, institution_id, _specs(enrollment_ids))
    return _books_and_rest(institution_id, opened)


async def posted_and_books(
    connection: AsyncConnection,
    institution_id: UUID,
    keys: Sequence[str],
    enrollment_ids: Sequence[UUID],
) -> tuple[dict[str, int], Books, list[Account]]:
    """With the ledger lock held, in one read: the seq of each of `keys` already posted, the
    institution's books and the prepaid account of each of `enrollment_ids`, in order."""
    posted, opened = await posted_and_open_accounts(
        connection, institution_id, keys, _specs(enrollment_ids)
    )
    books, prepaid = _books_and_rest(institution_id, opened)
    return posted, books, prepaid


async def posted_and_books_of(
    connection: AsyncConnection, wanted: Mapping[UUID, tuple[Sequence[str], Sequence[UUID]]]
) -> dict[UUID, tuple[LockedRead, Books, list[Account]] | None]:
    """`posted_and_books` of several institutions, given each one's keys and enrollments: their
    ledger locks taken in id order, then one read for them all. What was read under the lock
    comes whole (`ledger.post_many_read` posts on it). None for an institution with an account
    not open yet (`posted_and_books` opens it)."""
    found = await read_locked(
        connection, {i: (keys, _specs(ids)) for i, (keys, ids) in wanted.items()}
    )
    books_of: dict[UUID, tuple[LockedRead, Books, list[Account]] | None] = {}
    for institution_id, (read, opened) in found.items():
        books_of[institution_id] = (
            None if opened is None else (read, *_books_and_rest(institution_id, opened))
        )
    return books_of


def _specs(enrollment_ids: Sequence[UUID]) -> list[AccountSpec]:
    return [
        *(AccountSpec(kind) for kind in INSTITUTION_KINDS),
        *(prepaid_spec(enrollment_id) for enrollment_id in enrollment_ids),
    ]


def _books_and_rest(institution_id: UUID, opened: list[Account]) -> tuple[Books, list[Account]]:
    books = len(INSTITUTION_KINDS)
    return Books(institution_id, *opened[:books]), opened[books:]


async def enrollment_account(
    connection: AsyncConnection, institution_id: UUID, enrollment_id: UUID
) -> Account:
    """The enrollment's prepaid liability: what its payer paid and has not yet been released."""
    [account] = await open_accounts(connection, institution_id, [prepaid_spec(enrollment_id)])
    return account
