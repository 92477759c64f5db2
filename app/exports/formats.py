"""How an export writes its cells and files: amounts in 元 from fen exactly, moments in
Asia/Shanghai, CSV (UTF-8 with a BOM, so Excel reads Chinese right) and XLSX (XlsxWriter), both from pages of
rows so that an export of any size is never held in memory whole."""

import codecs
import csv
import io
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import xlsxwriter

from app.kit.clock import SHANGHAI
from app.kit.money import is_fen

Row = Sequence[Any]


class Kind(StrEnum):
    text = "text"
    yuan = "yuan"  # an amount in fen, written in 元 with two decimals
    moment = "moment"  # an aware datetime, written in Asia/Shanghai


@dataclass(frozen=True, slots=True)
class Column:
    heading: str  # in Chinese: what the regulator's staff read
    kind: Kind = Kind.text


def yuan_text(fen: int | None) -> str:
    """Fen as 元 with two decimals, exactly (no division, no float): 12345 -> "123.45",
    -5 -> "-0.05"; None -> ""."""
    if fen is None:
        return ""
    if not is_fen(fen):
        raise ValueError(f"not an amount in fen: {fen!r}")
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def yuan_decimal(fen: int) -> Decimal:
    """Fen as an exact Decimal of 元 (for a spreadsheet's numeric cell): 12345 -> 123.45."""
    return Decimal(yuan_text(fen))


def local_text(moment: datetime | None) -> str:
    """A moment as the regulator's clock shows it: "2026-11-29 17:00:00" in Asia/Shanghai."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no place on anyone's clock")
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def text_cell(column: Column, value: Any) -> str:
    match column.kind:
        case Kind.yuan:
            return yuan_text(value)
        case Kind.moment:
            return local_text(value)
        case _:
            return "" if value is None else str(value)


def csv_lines(columns: Sequence[Column], rows: Sequence[Row], *, first: bool) -> bytes:
    """One chunk of the CSV file: the BOM and the headings first, then `rows`, CRLF-terminated."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if first:
        writer.writerow([column.heading for column in columns])
    writer.writerows(
        [text_cell(column, value) for column, value in zip(columns, row, strict=True)]
        for row in rows
    )
    chunk = buffer.getvalue().encode("utf-8")
    return codecs.BOM_UTF8 + chunk if first else chunk


async def csv_stream(
    columns: Sequence[Column], pages: AsyncIterator[Sequence[Row]]
) -> AsyncIterator[bytes]:
    """The CSV file, one chunk per page: at most a page is ever in memory."""
    yield csv_lines(columns, [], first=True)
    async for page in pages:
        if page:
            yield csv_lines(columns, page, first=False)


class XlsxWriter:
    """A workbook written by XlsxWriter in its constant-memory mode: each row is flushed to the
    sheet's temporary file once the next begins and strings are written inline (no table of
    them), so memory stays flat however many rows; `close` writes the .xlsx file at `path`.
    Amounts are number cells (so a column sums) holding the exact decimal, shown with two
    decimals."""

    def __init__(self, path: str, columns: Sequence[Column], title: str) -> None:
        self.columns = columns
        self.workbook = xlsxwriter.Workbook(path, {"constant_memory": True})
        self.sheet = self.workbook.add_worksheet(title)
        self.yuan = self.workbook.add_format({"num_format": "0.00"})
        self.sheet.write_row(0, 0, [column.heading for column in columns])
        self.next_row = 1

    def append(self, rows: Sequence[Row]) -> None:
        for row in rows:
            for index, (column, value) in enumerate(zip(self.columns, row, strict=True)):
                if column.kind is Kind.yuan and value is not None:
                    # A Decimal, not a float: XlsxWriter writes it with `.16G`, which keeps a
                    # Decimal's digits exactly.
                    self.sheet.write_number(  # type: ignore[call-overload]
                        self.next_row, index, yuan_decimal(value), self.yuan
                    )
                else:
                    self.sheet.write_string(self.next_row, index, text_cell(column, value))
            self.next_row += 1

    def close(self) -> None:
        self.workbook.close()


def file_chunks(path: str, size: int = 64 * 1024) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(size):
            yield chunk
