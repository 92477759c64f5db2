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
# Lines are split and decoded this many bytes at a time, whatever the size of the chunks: a file
# handed over whole is not decoded whole.
BLOCK_BYTES = 1024 * 1024


def text_batches(chunks: Iterable[bytes], encoding: str) -> Iterator[list[str]]:
    """The decoded lines of a file given as chunks of any sizes, without their `\\n` or a `\\r`
    before it, a list of consecutive lines at a time: a format's loop pays no call per line. A
    line split across chunks (a character too) is joined first; a last line needs no `\\n`.

    Splitting bytes at 0x0A is safe in UTF-8 and in GBK alike: neither uses that byte inside a
    multibyte character. So lines are decoded a block at a time, and a decoding error still names
    its line (the lines before it are given first, as a line-by-line reader would)."""
    pending = bytearray()  # a line begun, its end yet to come: grows in place, never recopied
    number = 0  # lines given so far
    for chunk in chunks:
        for start in range(0, len(chunk), BLOCK_BYTES):
            piece = chunk[start : start + BLOCK_BYTES]
            end = piece.rfind(b"\n") + 1
            if end:
                pending += piece[:end]
                lines, problem = _decoded(bytes(pending), encoding, number)
                pending = bytearray(piece[end:])
                number += len(lines)
                yield lines
                if problem is not None:
                    raise problem
            else:
                pending += piece
            if len(pending) > MAX_LINE_BYTES:
                raise StatementMalformed(f"longer than {MAX_LINE_BYTES} bytes", number + 1)
    if pending:
        last = bytes(pending)
        try:
            yield [last.decode(encoding).removesuffix("\r")]
        except UnicodeDecodeError as error:
            raise _undecodable(error, last, encoding, number + 1) from None


def _decoded(
    block: bytes, encoding: str, before: int
) -> tuple[list[str], StatementMalformed | None]:
    """The lines of `block`, which ends with `\\n` (`before` lines came before it), up to the
    first that does not decode, and the error naming that one."""
    try:
        text = block.decode(encoding)
    except UnicodeDecodeError:
        lines = []
        for number, raw in enumerate(block.split(b"\n"), before + 1):
            try:
                lines.append(raw.decode(encoding).removesuffix("\r"))
            except UnicodeDecodeError as error:
                return lines, _undecodable(error, raw, encoding, number)
        raise  # a codec that fails on the whole but on no line: not UTF-8 nor GBK
    lines = text.replace("\r\n", "\n").split("\n")
    lines.pop()  # what follows the last `\n`: nothing
    return lines, None


def _undecodable(
    error: UnicodeDecodeError, raw: bytes, encoding: str, number: int
) -> StatementMalformed:
    return StatementMalformed(
        f"byte {error.start + 1} is not {encoding}: {raw[error.start : error.end]!r}", number
    )


# A statement writes yuan with exactly two decimals (gmbank.md): "5700.9" is a file cut short.
_TWO_DECIMALS = re.compile(r"[0-9]+\.[0-9]{2}")
# Cached parsed booking times, at most: a busy day books a dozen lines a second, in time order.
_TIMES_KEPT = 1024


def _plain_yuan(text: str) -> int | None:
    """Yuan as nearly every line writes them (`1234.50`), checked without a regular expression:
    ASCII digits, no leading zero, too few to overflow a BIGINT. None leaves the full check to
    decide."""
    if len(text) > 3 and text[-3] == "." and (text[0] != "0" or text[1] == "."):
        digits = text[:-3] + text[-2:]
        if digits.isdigit() and digits.isascii() and len(digits) < 19:
            return int(digits)
    return None


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


def _amount(text: str, number: int, in_yuan: bool) -> int:
    try:
        fen = _fen(text, in_yuan)
    except ValueError as error:
        raise StatementMalformed(f"amount: {error}", number) from None
    if fen <= 0:
        raise StatementMalformed(f"amount is {fen} fen: not an amount of money", number)
    return fen


# A detail line's amount and balance: the common case checked first, anything else (a negative
# balance, an amount of nothing, a malformed one) by the full check, which names what is wrong.


def amount_fen(text: str, number: int) -> int:
    """An amount in fen: exact, more than zero (the direction is apart)."""
    if text.isdigit() and text.isascii() and text[0] != "0" and len(text) < 19:
        return int(text)  # as nearly every line writes it, as `_plain_yuan` checks yuan
    return _amount(text, number, False)


def amount_yuan(text: str, number: int) -> int:
    """An amount in yuan, as fen: exact, more than zero."""
    return _plain_yuan(text) or _amount(text, number, True)


def balance_fen(text: str, number: int, what: str) -> int:
    """A balance in fen (`-` when below zero), exactly."""
    if text.isdigit() and text.isascii() and text[0] != "0" and len(text) < 19:
        return int(text)  # as `amount_fen`
    return signed_fen(text, number, what)


def balance_yuan(text: str, number: int, what: str) -> int:
    """A balance in yuan, as fen (`-` when below zero), exactly."""
    fen = _plain_yuan(text)
    return signed_fen(text, number, what, in_yuan=True) if fen is None else fen


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


class LocalTimes:
    """`local_time`, each text parsed once while it recurs: a busy day's statement repeats each
    second a dozen times, one line after another. `get(text) or parse(text, number, what)`: the
    common case is one dictionary look-up."""

    def __init__(self) -> None:
        self._parsed: dict[str, datetime] = {}
        self.get = self._parsed.get

    def parse(self, digits: str, number: int, what: str) -> datetime:
        parsed = local_time(digits, number, what)
        if len(self._parsed) >= _TIMES_KEPT:
            self._parsed.clear()
        self._parsed[digits] = parsed
        return parsed


def local_day(digits: str, number: int, what: str) -> date:
    """`yyyyMMdd`."""
    return local_time(digits + "000000", number, what).date()


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
        if account_no is not None and account_no != self.account_no:
            if self.account_no is not None:
                raise StatementMalformed(
                    f"account {account_no} is not the statement's {self.account_no}", line.number
                )
            self.account_no = account_no
        day = line.booked_at.astimezone(SHANGHAI).date()  # no conversion when already Beijing's
        if day != self.day:
            if self.day is not None:
                raise StatementMalformed(
                    f"booked on {day}, not the statement's day {self.day}", line.number
                )
            self.day = day
        amount = line.amount_fen
        credit = line.direction is Direction.credit
        balance = line.balance_after_fen
        if balance is not None:
            signed = amount if credit else -amount
            if self._balance is None:
                self._first_balance = (line.number, balance - signed)
            elif balance != self._balance + signed:
                raise StatementMalformed(
                    f"balance after is {balance} fen, but {self._balance} fen "
                    f"{'plus' if credit else 'minus'} {amount} fen is "
                    f"{self._balance + signed} fen",
                    line.number,
                )
            self._balance = balance
        self.lines += 1
        if credit:
            self.credits_fen += amount
        else:
            self.debits_fen += amount
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
