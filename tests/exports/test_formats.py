"""The exports' pure rules: 元 from fen exactly, Shanghai times, CSV and XLSX written a page at a
time in flat memory."""

import csv
import io
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.exports.formats import (
    Column,
    Kind,
    XlsxWriter,
    csv_stream,
    local_text,
    yuan_decimal,
    yuan_text,
)
from app.kit.money import INT64_MAX

fen = st.integers(min_value=-INT64_MAX, max_value=INT64_MAX)


def test_yuan_examples():
    assert [yuan_text(f) for f in (12345, 0, 5, -5, -12345, 100)] == [
        "123.45",
        "0.00",
        "0.05",
        "-0.05",
        "-123.45",
        "1.00",
    ]
    assert yuan_text(None) == ""
    for bad in (1.5, True, "1", 2**63):
        with pytest.raises(ValueError):
            yuan_text(bad)


@given(fen)
def test_yuan_is_fen_exactly(amount):
    text = yuan_text(amount)
    whole, _, cents = text.lstrip("-").partition(".")
    assert len(cents) == 2 and whole == str(int(whole))  # two decimals, no leading zeros
    assert Decimal(text) * 100 == amount  # read back, it is the same number of fen
    assert yuan_decimal(amount) == Decimal(amount) / 100


# China last kept summer time in 1991: since then Shanghai is UTC+8 all year.
@given(
    st.datetimes(
        timezones=st.just(UTC), min_value=datetime(1992, 1, 1), max_value=datetime(9998, 1, 1)
    )
)
def test_times_are_shanghai_clock_time(moment):
    assert local_text(moment) == (moment + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")


COLUMNS = (Column("机构名称"), Column("金额(元)", Kind.yuan), Column("时间", Kind.moment))


async def _pages(count: int, size: int = 1000):
    moment = datetime(2026, 11, 29, 16, 0, tzinfo=UTC)
    for page in range(count):
        yield [(f"学校{page}-{n}", page * size + n, moment) for n in range(size)]


async def test_csv_stream_writes_bom_headings_and_rows():
    chunks = [chunk async for chunk in csv_stream(COLUMNS, _pages(2, 3))]
    text = b"".join(chunks)
    assert text.startswith(b"\xef\xbb\xbf") and chunks[0].endswith(b"\r\n")
    rows = list(csv.reader(io.StringIO(text[3:].decode())))
    assert rows[0] == ["机构名称", "金额(元)", "时间"]
    assert rows[1:3] == [
        ["学校0-0", "0.00", "2026-11-30 00:00:00"],
        ["学校0-1", "0.01", "2026-11-30 00:00:00"],
    ]
    assert len(rows) == 7


async def _peak(consume) -> int:
    tracemalloc.start()
    try:
        await consume()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.database_free
async def test_a_large_csv_stays_flat_in_memory():
    async def consume(pages: int):
        async def run():
            async for _ in csv_stream(COLUMNS, _pages(pages)):
                pass

        return run

    small = await _peak(await consume(1))
    large = await _peak(await consume(10))  # 10,000 rows
    assert large < small + 256 * 1024, (small, large)


@pytest.mark.database_free
async def test_a_large_xlsx_stays_flat_in_memory(tmp_path):
    def consume(pages: int):
        async def run():
            writer = XlsxWriter(str(tmp_path / f"{pages}.xlsx"), COLUMNS, "测试")
            async for page in _pages(pages):
                writer.append(page)
            writer.close()

        return run

    small = await _peak(consume(1))
    large = await _peak(consume(10))  # 10,000 rows, each name its own
    assert large < small + 256 * 1024, (small, large)
    book = openpyxl.load_workbook(tmp_path / "10.xlsx", read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    assert len(rows) == 10_001 and rows[0] == ("机构名称", "金额(元)", "时间")
    assert rows[-1] == ("学校9-999", 99.99, "2026-11-30 00:00:00")
