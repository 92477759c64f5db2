"""A day at the bank simulator and its statement file, written by the simulator's own dialect of
each bank, for the statement readers' tests: what the bank booked is what a reader must give back.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from typing import Any

from app.banks.protocol import (
    BankAdapter,
    Direction,
    InboundRequest,
    StatementLine,
    StatementSummary,
)
from app.banks.registry import ADAPTERS
from app.kit.clock import SHANGHAI
from bank_simulator.config import SimBank
from bank_simulator.keys import bank_keys
from bank_simulator.messages import DIALECTS
from bank_simulator.state import Account
from bank_simulator.state import Direction as SimDirection

DAY = date(2026, 11, 28)
ACCOUNT_NO = "6222020200112233"
OPENING_FEN = 5_000_00
SENT_AT = datetime.combine(DAY + timedelta(days=1), time(1, 30), SHANGHAI)


@dataclass(frozen=True)
class Bank:
    adapter: BankAdapter
    config: Any  # the service's config of the bank
    simulated: SimBank

    def statement(self, account: Account) -> bytes:
        return DIALECTS[self.adapter.name].statement(self.simulated, account, DAY, SENT_AT)

    def request(self, body: bytes) -> InboundRequest:
        """The statement as the bank posts it: signed by the simulator, received as it is sent."""
        headers = DIALECTS[self.adapter.name].statement_headers(self.simulated, body, SENT_AT)
        return InboundRequest(
            headers={name.lower(): value for name, value in headers.items()},
            body=body,
            received_at=SENT_AT,
        )


def bank(adapter: str) -> Bank:
    keys = bank_keys(adapter)
    return Bank(
        adapter=ADAPTERS[adapter],
        config=ADAPTERS[adapter].config_model.model_validate(keys.service_config),
        simulated=SimBank(slug=f"sim-{adapter}", adapter=adapter, **keys.simulator_config),
    )


def at(hour: int, minute: int = 0, second: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hour, minute, second), SHANGHAI)


def account(movements: int = 0) -> Account:
    """A day with a payment the day before (in the opening balance), two payments (one from a
    payer whose name needs quoting in a CSV), a payout, its return (退票) and a refund; then
    `movements` more payments of 1 fen, and a payment the next day (in no balance of the day)."""
    books = Account(
        slug="sim",
        account_no=ACCOUNT_NO,
        name="Escrow",
        opening_balance_fen=OPENING_FEN,
        balance_fen=OPENING_FEN,
    )

    def book(when: datetime, direction: SimDirection, amount: int, reference: str, **more: Any):
        return books.book(
            at=when,
            direction=direction,
            amount_fen=amount,
            reference=reference,
            counterparty_account=more.get("counterparty_account", "6217000010002000"),
            counterparty_name=more.get("counterparty_name", "张三"),
            memo=more.get("memo", ""),
            bank_reference=f"{when:%Y%m%d%H%M%S}{len(books.transactions):08d}",
            return_reason=more.get("return_reason"),
        )

    credit, debit = SimDirection.credit, SimDirection.debit
    book(at(23, 59, 59, DAY - timedelta(days=1)), credit, 700_00, "ORD0")
    book(at(0, 0, 0), credit, 1234_56, "ORD1", counterparty_name="李四, 王五")
    book(at(9, 15), credit, 99, "ORD2", memo="学费")
    book(at(12), debit, 800_00, "PAYOUT1", counterparty_name="某某培训学校", memo="PAYOUT")
    book(at(15, 30), credit, 800_00, "PAYOUT1", memo="RETURN AC04", return_reason="AC04")
    book(at(18), debit, 1234_56, "REFUND1", counterparty_account="", memo="REFUND")
    for n in range(movements):
        book(at(20, n // 3600 % 4, n // 60 % 60), credit, 1, f"MANY{n}")
    book(at(0, 0, 1, DAY + timedelta(days=1)), credit, 5_00, "ORD3")
    return books


def expected(books: Account) -> tuple[list[dict[str, Any]], StatementSummary]:
    """What the bank booked on DAY, as the fields of the lines a reader must give back."""
    opening, transactions, closing = books.day(DAY)
    lines = [
        {
            "bank_reference": t.bank_reference,
            "booked_at": t.booked_at,
            "direction": Direction.credit
            if t.direction is SimDirection.credit
            else Direction.debit,
            "amount_fen": t.amount_fen,
            "reference": t.reference,
            "counterparty_account_no": t.counterparty_account or None,
            "counterparty_name": t.counterparty_name or None,
            "returned": t.return_reason is not None,
        }
        for t in transactions
    ]
    credits = sum(t.amount_fen for t in transactions if t.direction is SimDirection.credit)
    debits = sum(t.amount_fen for t in transactions if t.direction is SimDirection.debit)
    summary = StatementSummary(
        account_no=ACCOUNT_NO,
        day=DAY,
        opening_fen=opening,
        closing_fen=closing,
        lines=len(transactions),
        credits_fen=credits,
        debits_fen=debits,
    )
    return lines, summary


def read(
    adapter: BankAdapter, chunks: Iterable[bytes]
) -> tuple[list[StatementLine], StatementSummary]:
    reader = adapter.read_statement(chunks)
    lines = list(reader.lines())
    return lines, reader.summary()


def chunked(body: bytes, size: int) -> Iterator[bytes]:
    return (body[start : start + size] for start in range(0, len(body), size))


def split_at(body: bytes, cuts: Iterable[int]) -> list[bytes]:
    """`body` cut at the given offsets (any, in any order): the chunks join back to it."""
    bounds = [0, *sorted({cut for cut in cuts if 0 < cut < len(body)}), len(body)]
    return [body[start:end] for start, end in pairwise(bounds)]
