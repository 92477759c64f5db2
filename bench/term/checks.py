"""What the replay checks at the end, apart from the requests that check as they go: the ledger
identity of DOMAIN.md and the balances the replay expects, to the fen."""

from uuid import UUID

from app.db.engine import create_engine
from app.ledger import service as ledger
from app.ledger.types import AccountKind


class ReplayFailed(Exception):
    """Something the replay did or found is wrong: the run fails with this message."""


def identity_problem(totals: dict[str, int]) -> str | None:
    """DOMAIN.md's identity on one institution's balances by kind: escrow cash = prepaid +
    releasable + in transit + suspense + own funds."""
    held = sum(amount for kind, amount in totals.items() if kind != AccountKind.escrow_cash.value)
    cash = totals.get(AccountKind.escrow_cash.value, 0)
    if cash != held:
        return f"escrow cash {cash} fen but prepaid, releasable, in transit, suspense and own funds {held}"
    return None


def expectation_problem(expected: dict[str, int], totals: dict[str, int]) -> str | None:
    """Every kind's balance exactly as expected, a missing kind counting as 0."""
    wrong = {
        str(kind): (totals.get(kind, 0), amount)
        for kind, amount in expected.items()
        if totals.get(kind, 0) != amount
    }
    if wrong:
        return ", ".join(
            f"{kind} {got} fen, expected {want}" for kind, (got, want) in wrong.items()
        )
    return None


async def balances_by_kind(url: str, institution_ids: list[UUID]) -> dict[UUID, dict[str, int]]:
    """Read straight from the database: no API gives the balances of every kind."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await ledger.balances_by_kind_of(connection, institution_ids)
    finally:
        await engine.dispose()
