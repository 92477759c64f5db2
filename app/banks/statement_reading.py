"""What every bank's statement reader shares: splitting streamed bytes into lines, and the checks
and sums that hold whatever the format (the `StatementReader` protocol is in `protocol.py`).

A statement file is read as it streams in, so a day of a million movements costs the memory of a
few lines: nothing here keeps a line once it is yielded.
"""

import re
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable, Iterator
from datetime import date, datetime

from app.banks.protocol import Direction, StatementLine, StatementMalformed, StatementSummary
from app.kit.clock import SHANGHAI
from app.kit.money import fen_from_digits, fen_from_yuan

# No statement line is anywhere near this long; a file without line breaks must not be buffered
# whole before it is refused.
MAX_LINE_BYTES = 64 * 1024


def byte_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a file given as chunks of any sizes, without their `\\n`. A line split across
    chunks (a character too) is joined before it is yielded; a last line needs no `\\n`.

    Splitting bytes at 0x0A is safe in UTF-8 and in GBK alike: neither uses that byte inside a
    multibyte character. So each line is decoded whole, and a decoding error names its line."""
    buffer = bytearray()  # grows in place: a line that comes a byte at a time is not recopied
    number = 0
    for chunk in chunks:
        searched = len(buffer)  # what came before holds no line break
        buffer += chunk
        start = 0
        # One line at a time, even out of one big chunk: none is copied out before it is read.
        while (end := buffer.find(b"\n", searched)) >= 0:
            number += 1
            yield bytes(buffer[start:end])
            start = searched = end + 1
        del buffer[:start]
        if len(buffer) > MAX_LINE_BYTES:
            raise StatementMalformed(f"longer than {MAX_LINE_BYTES} bytes", number + 1)
    if buffer:
        yield bytes(buffer)


def text_lines(chunks: Iterable[bytes], encoding: str) -> Iterator[str]:
    """The decoded lines of a file, without `\\n` or a `\\r` before it."""
    for number, raw in enumerate(byte_lines(chunks), 1):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as error:
            raise StatementMalformed(
                f"byte {error.start + 1} is not {encoding}: {raw[error.start : error.end]!r}",
                number,
            ) from None
        yield text.removesuffix("\r")


# A statement writes yuan with exactly two decimals (gmbank.md): "5700.9" is a file cut short.
_TWO_DECIMALS = re.compile(r"[0-9]+\.[0-9]{2}")


def _fen(text: str, in_yuan: bool) -> int:
    if not in_yuan:
        return fen_from_digits(text)
    if _TWO_DECIMALS.fullmatch(text) is None:
        raise ValueError(f"not an amount in yuan with two decimals: {text!r}")
    return fen_from_yuan(text)


def signed_fen(text: str, number: int, what: str, *, in_yuan: bool = False) -> int:
    """A balance as the bank writes it (fen or yuan, `-` when below zero), exactly."""
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    try:
        fen = _fen(digits, in_yuan)
    except ValueError as error:
        raise StatementMalformed(f"{what}: {error}", number) from None
    return -fen if negative else fen


def amount_fen(text: str, number: int, *, in_yuan: bool = False) -> int:
    """A detail line's amount: an exact number of fen, more than zero (the direction is apart)."""
    try:
        fen = _fen(text, in_yuan)
    except ValueError as error:
        raise StatementMalformed(f"amount: {error}", number) from None
    if fen <= 0:
        raise StatementMalformed(f"amount is {fen} fen: not an amount of money", number)
    return fen


def local_time(digits: str, number: int, what: str) -> datetime:
    """`yyyyMMddHHmmss` in Beijing time, as the domestic banks write it."""
    if len(digits) != 14 or not digits.isascii() or not digits.isdigit():
        raise StatementMalformed(f"{what} is not yyyyMMddHHmmss: {digits!r}", number)
    try:
        return datetime(
            int(digits[0:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]),
            int(digits[12:14]),
            tzinfo=SHANGHAI,
        )
    except ValueError:
        raise StatementMalformed(f"{what} is not a valid time: {digits!r}", number) from None


def local_day(digits: str, number: int, what: str) -> date:
    """`yyyyMMdd`."""
    return local_time(digits + "000000", number, what).date()


def optional(text: str) -> str | None:
    return text or None


class StatementTally:
    """Checks each detail line against the statement's one account and day, follows the running
    balance the bank prints, and adds the lines up. A format that names its account and day before
    its lines says so with `expect`; otherwise (gmbank) the first line sets them."""

    def __init__(self) -> None:
        self.account_no: str | None = None
        self.day: date | None = None
        self.lines = 0
        self.credits_fen = 0
        self.debits_fen = 0
        self._first_balance: tuple[int, int] | None = None  # (line, opening implied by it)
        self._balance: int | None = None  # after the last line

    def expect(self, account_no: str, day: date) -> None:
        self.account_no, self.day = account_no, day

    def count(self, line: StatementLine, account_no: str | None = None) -> StatementLine:
        """`line` once it holds; `account_no` is the line's own, where the format repeats it."""
        if account_no is not None:
            if self.account_no is None:
                self.account_no = account_no
            elif account_no != self.account_no:
                raise StatementMalformed(
                    f"account {account_no} is not the statement's {self.account_no}", line.number
                )
        day = line.booked_at.astimezone(SHANGHAI).date()
        if self.day is None:
            self.day = day
        elif day != self.day:
            raise StatementMalformed(
                f"booked on {day}, not the statement's day {self.day}", line.number
            )
        signed = line.amount_fen if line.direction is Direction.credit else -line.amount_fen
        if line.balance_after_fen is not None:
            if self._balance is None:
                self._first_balance = (line.number, line.balance_after_fen - signed)
            elif line.balance_after_fen != self._balance + signed:
                raise StatementMalformed(
                    f"balance after is {line.balance_after_fen} fen, but {self._balance} fen "
                    f"{'plus' if signed > 0 else 'minus'} {line.amount_fen} fen is "
                    f"{self._balance + signed} fen",
                    line.number,
                )
            self._balance = line.balance_after_fen
        self.lines += 1
        if line.direction is Direction.credit:
            self.credits_fen += line.amount_fen
        else:
            self.debits_fen += line.amount_fen
        return line

    def summary(self, opening_fen: int, closing_fen: int, number: int | None) -> StatementSummary:
        """The statement's summary once every line is counted; `number` is the line that gives
        the balances, named if they do not add up."""
        if self.account_no is None or self.day is None:
            raise StatementMalformed(
                "names no account and day: it has no detail line to take them from", number
            )
        if self._first_balance is not None and self._first_balance[1] != opening_fen:
            first, implied = self._first_balance
            raise StatementMalformed(
                f"opening balance {opening_fen} fen, but line {first}'s balance after implies "
                f"{implied} fen",
                number,
            )
        # A closing balance that is not opening + credits - debits is read as the bank gives it:
        # reconciliation reports it as a balance_mismatch break, with both figures.
        return StatementSummary(
            account_no=self.account_no,
            day=self.day,
            opening_fen=opening_fen,
            closing_fen=closing_fen,
            lines=self.lines,
            credits_fen=self.credits_fen,
            debits_fen=self.debits_fen,
        )


class StreamedStatement(ABC):
    """A `StatementReader` over a format's `_read`: a generator that yields the detail lines,
    each counted by `self.tally`, and returns the summary."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self._started = False
        self._summary: StatementSummary | None = None
        self.tally = StatementTally()

    def lines(self) -> Iterator[StatementLine]:
        if self._started:
            raise RuntimeError("a statement streams once: lines() was already called")
        self._started = True
        self._summary = yield from self._read(self._chunks)

    def heading(self) -> tuple[str, date] | None:
        if self._summary is not None:
            return self._summary.account_no, self._summary.day
        if self.tally.account_no is None or self.tally.day is None:
            return None
        return self.tally.account_no, self.tally.day

    def summary(self) -> StatementSummary:
        if self._summary is None:
            raise RuntimeError("the summary is known once lines() has been read to the end")
        return self._summary

    @abstractmethod
    def _read(
        self, chunks: Iterable[bytes]
    ) -> Generator[StatementLine, None, StatementSummary]: ...
