"""An institution's standard accounts, by role, as the lifecycle uses them."""

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from app.ledger.service import (
    AccountSpec,
    open_accounts,
    posted_and_open_accounts,
    prepaid_spec,
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
