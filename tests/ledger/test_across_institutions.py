"""A write across institutions (`read_locked` then `post_many_read`, the inbox's group commit on
one database) is, for each institution, exactly the write of its own drafts alone (`post_many`):
the same entries accepted, replayed and refused, the same balances, an intact journal."""

import asyncio
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.db.engine import create_engine
from app.db.transaction import run_in_transaction
from app.ledger import service as ledger
from app.ledger.errors import LedgerError
from app.ledger.types import AccountKind, EntryDraft
from tests.conftest import TEST_DATABASE_URL

SPECS = [
    ledger.AccountSpec(AccountKind.escrow_cash),
    ledger.AccountSpec(AccountKind.prepaid, ref="a"),
    ledger.AccountSpec(AccountKind.prepaid, ref="b"),
]

# One draft: (key number, which prepaid account, amount): a positive amount pays in, a negative
# one pays back out (refused below zero); a key number seen before is a replay or a misuse.
drafts = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=5),
        st.integers(min_value=0, max_value=1),
        st.integers(min_value=-3_000, max_value=3_000).filter(bool),
    ),
    max_size=6,
)


def _drafts(spec: list[tuple[int, int, int]], accounts) -> list[EntryDraft]:
    cash, *prepaid = accounts
    return [
        EntryDraft.transfer(f"k{key}", "payment", cash.id, prepaid[which].id, amount)
        if amount > 0
        else EntryDraft.transfer(f"k{key}", "refund", prepaid[which].id, cash.id, -amount)
        for key, which, amount in spec
    ]


def _shape(result) -> tuple:
    if isinstance(result, LedgerError):
        return ("refused", type(result).__name__)
    return ("posted", result.seq, result.idempotency_key, result.replayed)


async def _compare(batches: list[list[tuple[int, int, int]]]) -> None:
    engine = create_engine(TEST_DATABASE_URL, pool_size=2)
    try:
        together = [uuid.uuid4() for _ in batches]
        alone = [uuid.uuid4() for _ in batches]
        accounts = {}
        for institution_id in together + alone:
            accounts[institution_id] = await run_in_transaction(
                engine, lambda c, i=institution_id: ledger.open_accounts(c, i, SPECS)
            )

        async def across(connection):
            read = await ledger.read_locked(connection, {i: ([], SPECS) for i in together})
            return await ledger.post_many_read(
                connection,
                {
                    i: (_drafts(spec, accounts[i]), read[i][0])
                    for i, spec in zip(together, batches, strict=True)
                },
            )

        # The read before the write asked for no keys: post_many_read must still find replays
        # of keys posted earlier in the batch, and earlier transactions' keys are none here.
        written = await run_in_transaction(engine, across)
        for i, j, spec in zip(together, alone, batches, strict=True):
            single = await run_in_transaction(
                engine, lambda c, j=j, spec=spec: ledger.post_many(c, j, _drafts(spec, accounts[j]))
            )
            assert [_shape(r) for r in written[i]] == [_shape(r) for r in single]
            async with engine.connect() as connection:
                mine = await ledger.accounts(connection, i)
                theirs = await ledger.accounts(connection, j)
                assert sorted(a.code for a in mine.values()) == sorted(
                    a.code for a in theirs.values()
                )
                assert {a.code: a.balance_fen for a in mine.values()} == {
                    a.code: a.balance_fen for a in theirs.values()
                }
                report = await ledger.verify(connection, i)
                assert report.intact, report.problem
    finally:
        await engine.dispose()


@pytest.mark.usefixtures("database_url")
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(drafts, min_size=1, max_size=3))
def test_a_write_across_institutions_is_each_institutions_write_alone(batches):
    asyncio.run(_compare(batches))
