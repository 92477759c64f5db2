"""The ums daily statement (spec ums.md section 3): `|`-separated UTF-8 lines, an `H` line with the
account, day and balances, a `D` line per movement, a `T` line with the sums of both directions."""

from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import NoReturn

from app.banks.protocol import Direction, StatementLine, StatementMalformed, StatementSummary
from app.banks.statement_reading import (
    LocalTimes,
    StreamedStatement,
    amount_fen,
    balance_fen,
    local_day,
    signed_fen,
    text_batches,
)
from app.kit.money import fen_from_digits

_DIRECTIONS = {"C": Direction.credit, "D": Direction.debit}
_FIELDS = {"H": 7, "D": 10, "T": 3}
# A returned payout (退票) is a credit quoting the payout's srcReqId with a memo beginning so.
RETURN_MEMO = "RETURN"


@dataclass(frozen=True, slots=True)
class _Header:
    account_no: str
    opening_fen: int
    closing_fen: int
    count: int


def _refuse_fields(fields: list[str], number: int) -> NoReturn:
    expected = _FIELDS.get(fields[0])
    if expected is None:
        raise StatementMalformed(f"not an H, D or T line: {fields[0][:20]!r}", number)
    raise StatementMalformed(
        f"a {fields[0]} line has {expected} fields, this one {len(fields)}", number
    )


def _count(text: str, number: int, what: str) -> int:
    try:
        return fen_from_digits(text)
    except ValueError as error:
        raise StatementMalformed(f"{what}: {error}", number) from None


def _detail(fields: list[str], number: int, booked_at: LocalTimes) -> StatementLine:
    _, seq_id, booked, direction, amount, balance, account, name, reference, memo = fields
    if not seq_id:
        raise StatementMalformed("no seqId", number)
    if direction not in _DIRECTIONS:
        raise StatementMalformed(f"direction is {direction!r}, not C or D", number)
    return StatementLine(  # by position: a million lines a day pay for keywords
        number,
        seq_id,  # bank_reference
        booked_at.get(booked) or booked_at.parse(booked, number, "the booking time"),
        _DIRECTIONS[direction],
        amount_fen(amount, number),
        reference or None,
        account or None,  # counterparty_account_no
        name or None,  # counterparty_name
        memo or None,
        direction == "C" and memo.startswith(RETURN_MEMO),  # returned
        balance_fen(balance, number, "balance after"),  # balance_after_fen
    )


class UmsStatement(StreamedStatement):
    def _read(self, chunks: Iterable[bytes]) -> Generator[StatementLine, None, StatementSummary]:
        tally = self.tally
        header: _Header | None = None
        trailer: tuple[int, list[str]] | None = None
        number = 0
        booked_at = LocalTimes()
        for batch in text_batches(chunks, "utf-8"):
            for text in batch:
                number += 1
                fields = text.split("|")
                if len(fields) != _FIELDS.get(fields[0]):
                    _refuse_fields(fields, number)
                if trailer is not None:
                    raise StatementMalformed(f"a line after the T line {trailer[0]}", number)
                if header is None:
                    if fields[0] != "H":
                        raise StatementMalformed("the file does not begin with its H line", number)
                    _, _group_id, account_no, day, opening, closing, count = fields
                    if not account_no:
                        raise StatementMalformed("no account number", number)
                    header = _Header(
                        account_no,
                        signed_fen(opening, number, "opening balance"),
                        signed_fen(closing, number, "closing balance"),
                        _count(count, number, "the number of D lines"),
                    )
                    tally.expect(account_no, local_day(day, number, "the day"))
                elif fields[0] == "D":
                    if tally.lines == header.count:
                        raise StatementMalformed(
                            f"D line beyond the {header.count} the H line announces", number
                        )
                    yield tally.count(_detail(fields, number, booked_at))
                elif fields[0] == "T":
                    trailer = (number, fields)
                else:
                    raise StatementMalformed("a second H line", number)
        if header is None:
            raise StatementMalformed("an empty file: no H line")
        if trailer is None:
            raise StatementMalformed("no T line: the file is cut short", number + 1)
        if tally.lines != header.count:
            raise StatementMalformed(
                f"the H line announces {header.count} D lines, the file has {tally.lines}", 1
            )
        at, (_, credits, debits) = trailer
        sums = (_count(credits, at, "sum of C"), _count(debits, at, "sum of D"))
        if sums != (tally.credits_fen, tally.debits_fen):
            raise StatementMalformed(
                f"T sums C {sums[0]} and D {sums[1]} fen, the D lines C {tally.credits_fen} and "
                f"D {tally.debits_fen} fen",
                at,
            )
        return tally.summary(header.opening_fen, header.closing_fen, 1)
