"""What holds of every bank's statement reader: any chunking of the file reads the same, any day
the simulator books reads back exactly, and a file of 200,000 lines is read in flat memory."""

import os
import tracemalloc
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.banks.protocol import StatementMalformed
from bank_simulator.state import Account, Direction
from bench.statement_parse import synthetic
from tests.banks.statements import (
    DAY,
    OPENING_FEN,
    account,
    at,
    bank,
    chunked,
    expected,
    read,
    split_at,
)

ADAPTERS = ["ums", "iso20022", "gmbank"]
BANKS = {name: bank(name) for name in ADAPTERS}
FILES = {name: BANKS[name].statement(account(movements=40)) for name in ADAPTERS}
WHOLE = {name: read(BANKS[name].adapter, [FILES[name]]) for name in ADAPTERS}


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("size", [1, 7, 4096])
def test_chunks_of_any_size_read_the_same(adapter: str, size: int) -> None:
    assert read(BANKS[adapter].adapter, chunked(FILES[adapter], size)) == WHOLE[adapter]


@pytest.mark.parametrize("adapter", ADAPTERS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_chunk_boundaries_read_the_same(adapter: str, data: st.DataObject) -> None:
    """Cuts anywhere: inside a line, between a line and its `\\n`, inside a multibyte character
    (the payers' names are Chinese, in UTF-8 or GBK), into empty chunks too."""
    body = FILES[adapter]
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=60))
    chunks = split_at(body, cuts)
    chunks.insert(data.draw(st.integers(0, len(chunks))), b"")
    assert read(BANKS[adapter].adapter, chunks) == WHOLE[adapter]


# Names and memos with what a CSV must quote and characters of two bytes in GBK, three in UTF-8.
TEXT = '张三李四王五学费培训,"AZaz09-'
MOVEMENT = st.tuples(
    st.booleans(),  # a credit?
    st.integers(1, 10**9),
    st.integers(0, 86_399),  # second of the day
    st.text(alphabet=TEXT, min_size=1, max_size=12),  # iso20022 writes an account for no name
    st.text(alphabet=TEXT, max_size=12),
)


@pytest.mark.parametrize("adapter", ADAPTERS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(movements=st.lists(MOVEMENT, min_size=1, max_size=15))
def test_any_day_the_bank_books_reads_back_exactly(adapter: str, movements: list) -> None:
    """Whatever the bank books on the day (in time order, as it books), the reader gives back each
    movement and the day's balances and totals, and they add up: closing = opening + credits -
    debits."""
    books = Account(
        slug="sim",
        account_no="6222020200112233",
        name="Escrow",
        opening_balance_fen=OPENING_FEN + 10**11,  # enough for any debit
        balance_fen=OPENING_FEN + 10**11,
    )
    for n, (credit, amount, second, name, memo) in enumerate(sorted(movements, key=lambda m: m[2])):
        books.book(
            at=at(0) + timedelta(seconds=second),
            direction=Direction.credit if credit else Direction.debit,
            amount_fen=amount,
            reference=f"REF{n}",
            counterparty_account="6217000010002000",
            counterparty_name=name,
            memo=memo,
            bank_reference=f"SEQ{n:06d}",
        )
    lines, summary = read(BANKS[adapter].adapter, [BANKS[adapter].statement(books)])
    want_lines, want_summary = expected(books)
    assert summary == want_summary
    assert summary.closing_fen == summary.opening_fen + summary.credits_fen - summary.debits_fen
    assert [
        {field: getattr(line, field) for field in want_lines[0]} for line in lines
    ] == want_lines
    assert all(line.booked_at.date() == DAY for line in lines)


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.database_free
@pytest.mark.parametrize("adapter", ["ums", "gmbank"])
def test_a_file_of_200000_lines_is_read_in_flat_memory(adapter: str) -> None:
    """Lines stream: the reader holds a few of them, not the file nor the lines it gave. (The
    file is made before the count starts and handed over in 64 KiB chunks, as from disk.)"""
    body = b"".join(synthetic(adapter, 200_000))
    reader = BANKS[adapter].adapter.read_statement(chunked(body, 64 * 1024))
    tracemalloc.start()
    try:
        count = sum(1 for _ in reader.lines())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == reader.summary().lines == 200_000
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.database_free
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads Linux's /proc")
def test_a_camt053_of_200000_entries_is_read_in_flat_memory() -> None:
    """The same for the XML statement, whose tree libxml2 holds outside Python's allocator, so
    tracemalloc cannot see it: the process's resident memory must not grow with the entries."""
    reader = BANKS["iso20022"].adapter.read_statement(synthetic("iso20022", 200_000))
    lines = reader.lines()
    next(lines)
    start = most = _resident_bytes()
    count = 1
    for count, _ in enumerate(lines, 2):
        if count % 10_000 == 0:
            most = max(most, _resident_bytes())
    assert count == reader.summary().lines == 200_000
    assert most - start < 20 * 2**20, f"grew {(most - start) / 2**20:.1f} MiB"


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_file_cut_short_is_malformed(adapter: str) -> None:
    """Whatever the cut, a statement missing its end is refused, never read as a shorter day."""
    body = FILES[adapter]
    for end in range(len(body) - 40, len(body) - 1, 3):
        with pytest.raises(StatementMalformed):
            read(BANKS[adapter].adapter, [body[:end]])


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_line_without_end_is_refused_before_it_fills_memory(adapter: str) -> None:
    endless = (b"A" * 4096 for _ in range(10_000))  # 40 MiB without a line break
    with pytest.raises(StatementMalformed):
        read(BANKS[adapter].adapter, endless)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_the_summary_is_known_only_once_the_lines_are_read(adapter: str) -> None:
    reader = BANKS[adapter].adapter.read_statement([FILES[adapter]])
    with pytest.raises(RuntimeError):
        reader.summary()
    lines = reader.lines()
    next(lines)
    with pytest.raises(RuntimeError):
        reader.summary()
    assert len(list(lines)) == WHOLE[adapter][1].lines - 1
    assert reader.summary() == WHOLE[adapter][1]


@pytest.mark.parametrize("adapter", ["ums", "gmbank"])
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_any_one_amount_changed_is_refused(adapter: str, data: st.DataObject) -> None:
    """A file whose amount on any line disagrees with the balances it prints is never read,
    whatever the line and the amount (the balance after each line is the check)."""
    books = account()
    day = [t for t in books.transactions if t.booked_at.date() == DAY]
    changed = data.draw(st.sampled_from(day))
    changed.amount_fen = data.draw(st.integers(1, 10**9).filter(lambda a: a != changed.amount_fen))
    with pytest.raises(StatementMalformed):
        read(BANKS[adapter].adapter, [BANKS[adapter].statement(books)])
