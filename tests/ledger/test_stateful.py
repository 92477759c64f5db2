"""Random sequences of ledger operations, with the ledger's invariants checked after every step
against the database, against a plain model of what the balances must be, and by verify."""

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule
from sqlalchemy import text

from app.db.engine import create_engine
from app.db.transaction import run_in_transaction
from app.ledger import service as ledger
from app.ledger.errors import InsufficientBalance, TransferAlreadyResolved
from app.ledger.types import AccountKind, EntryDraft, PostedEntry, Posting, TransferStatus
from tests.conftest import TEST_DATABASE_URL
from tests.ledger.conftest import db_id

KINDS = [
    AccountKind.escrow_cash,
    AccountKind.prepaid,
    AccountKind.prepaid,
    AccountKind.releasable,
    AccountKind.payout_in_transit,
    AccountKind.own_funds,
]
amounts = st.integers(min_value=1, max_value=2_000)
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


class LedgerMachine(RuleBasedStateMachine):
    posted = Bundle("posted")
    pending = Bundle("pending")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.engine = create_engine(TEST_DATABASE_URL, pool_size=2)
        self.institution_id = uuid.uuid4()
        self.model: dict[uuid.UUID, int] = {}  # raw balances we expect
        self.keys = 0

    def run(self, work):
        return self.loop.run_until_complete(run_in_transaction(self.engine, work))

    def teardown(self) -> None:
        self.loop.run_until_complete(self.engine.dispose())
        self.loop.close()

    def key(self) -> str:
        self.keys += 1
        return f"k{self.keys}"

    @initialize()
    def open_books(self) -> None:
        specs = [ledger.AccountSpec(kind, ref=str(n)) for n, kind in enumerate(KINDS)]
        opened = self.run(lambda c: ledger.open_accounts(c, self.institution_id, specs))
        self.accounts = {a.id: a for a in opened}
        self.ids = [a.id for a in opened]
        self.model = {a.id: 0 for a in opened}

    def _would_hold(self, postings) -> bool:
        after = dict(self.model)
        for p in postings:
            after[p.account_id] += p.amount_fen
        return all(after[a] * self.accounts[a].normal >= 0 for a in after)

    def _apply(self, postings) -> None:
        for p in postings:
            self.model[p.account_id] += p.amount_fen

    @rule(target=posted, data=st.data(), lines=st.integers(min_value=2, max_value=4))
    def post_entry(self, data, lines):
        accounts = data.draw(st.lists(st.sampled_from(self.ids), min_size=lines, max_size=lines))
        head = data.draw(
            st.lists(
                st.integers(-2_000, 2_000).filter(bool), min_size=lines - 1, max_size=lines - 1
            )
        )
        last = -sum(head)
        if last == 0:
            head[0] += 1
            last -= 1
        postings = tuple(
            Posting(a, amount) for a, amount in zip(accounts, [*head, last], strict=True)
        )
        draft = EntryDraft(self.key(), "random", postings)
        expected_ok = self._would_hold(postings)
        try:
            entry = self.run(lambda c: ledger.post(c, self.institution_id, draft))
        except InsufficientBalance:
            assert not expected_ok
            return None
        assert expected_ok
        self._apply(postings)
        return (draft, entry)

    @rule(
        target=posted, funds=st.lists(st.tuples(st.integers(0, 1), amounts), min_size=1, max_size=6)
    )
    def pay_in_batch(self, funds):
        drafts = [
            EntryDraft.transfer(self.key(), "payment", self.ids[0], self.ids[1 + which], amount)
            for which, amount in funds
        ]
        results = self.run(lambda c: ledger.post_many(c, self.institution_id, drafts))
        for draft in drafts:
            self._apply(draft.postings)
        assert all(isinstance(r, PostedEntry) and not r.replayed for r in results)
        return (drafts[0], results[0])

    @rule(previous=posted)
    def replay(self, previous):
        if previous is None:
            return
        draft, entry = previous
        again = self.run(lambda c: ledger.post(c, self.institution_id, draft))
        assert again.replayed and again.seq == entry.seq

    @rule(target=pending, source=st.integers(1, 3), amount=amounts)
    def reserve(self, source, amount):
        source_id, transit_id = self.ids[source], self.ids[4]
        postings = (Posting.debit(source_id, amount), Posting.credit(transit_id, amount))
        expected_ok = self._would_hold(postings)
        try:
            transfer = self.run(
                lambda c: ledger.reserve(
                    c,
                    self.institution_id,
                    idempotency_key=self.key(),
                    kind="reserve",
                    source=source_id,
                    transit=transit_id,
                    settle=self.ids[0],
                    amount_fen=amount,
                )
            )
        except InsufficientBalance:
            assert not expected_ok
            return None
        assert expected_ok
        self._apply(postings)
        return transfer

    @rule(transfer=consumes(pending), outcome=st.sampled_from(TransferStatus), twice=st.booleans())
    def resolve(self, transfer, outcome, twice):
        if transfer is None or outcome is TransferStatus.pending:
            return
        credit = (
            transfer.settle_account_id
            if outcome is TransferStatus.posted
            else transfer.source_account_id
        )
        postings = (
            Posting.debit(transfer.transit_account_id, transfer.amount_fen),
            Posting.credit(credit, transfer.amount_fen),
        )
        resolve = ledger.post_transfer if outcome is TransferStatus.posted else ledger.void_transfer
        expected_ok = self._would_hold(postings)
        try:
            self.run(lambda c: resolve(c, self.institution_id, transfer.id))
        except InsufficientBalance:  # escrow cash drawn elsewhere meanwhile
            assert not expected_ok
            return
        assert expected_ok
        self._apply(postings)
        if twice:
            other = (
                ledger.void_transfer if resolve is ledger.post_transfer else ledger.post_transfer
            )
            try:
                self.run(lambda c: other(c, self.institution_id, transfer.id))
            except TransferAlreadyResolved:
                pass
            else:
                raise AssertionError("a resolved transfer was resolved again")

    @invariant()
    def books_hold(self):
        if not self.model:
            return

        async def read(connection):
            maintained = await ledger.accounts(connection, self.institution_id)
            replayed = await ledger.balances_as_of(connection, self.institution_id, _FAR_FUTURE)
            unbalanced = (
                await connection.execute(
                    text(
                        "SELECT entry_seq FROM ledger_postings WHERE institution_id = :i"
                        " GROUP BY entry_seq HAVING sum(amount_fen) <> 0"
                    ),
                    {"i": db_id(self.engine, self.institution_id)},
                )
            ).all()
            report = await ledger.verify(connection, self.institution_id)
            return maintained, replayed, unbalanced, report

        maintained, replayed, unbalanced, report = self.run(read)
        assert unbalanced == []
        # The chain, the head and every transfer's row agree with the journal: the database's
        # guards let each of the ledger's own steps through, and verify finds nothing wrong.
        assert report.intact, report.problem
        raw = {a: acc.balance_fen for a, acc in maintained.items()}
        assert raw == self.model
        assert sum(raw.values()) == 0
        assert all(acc.normal_balance_fen >= 0 for acc in maintained.values())
        assert {a: b for a, b in replayed.items() if b} == {a: b for a, b in raw.items() if b}


TestLedgerMachine = pytest.mark.usefixtures("database_url")(LedgerMachine.TestCase)
TestLedgerMachine.settings = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
