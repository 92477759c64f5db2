"""The ums daily statement (spec ums.md section 3): `|`-separated UTF-8 lines, an `H` line with the
account, day and balances, a `D` line per movement, a `T` line with the sums of both directions."""

from collections.abc import Generator, Iterable
from dataclasses import dataclass

from app.banks.protocol import Direction, StatementLine, StatementMalformed, StatementSummary
from app.banks.statement_reading import (
    StreamedStatement,
    amount_fen,
    local_day,
    local_time,
    optional,
    signed_fen,
    text_lines,
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


def _fields(text: str, number: int) -> list[str]:
    fields = text.split("|")
    expected = _FIELDS.get(fields[0])
    if expected is None:
        raise StatementMalformed(f"not an H, D or T line: {fields[0][:20]!r}", number)
    if len(fields) != expected:
        raise StatementMalformed(
            f"a {fields[0]} line has {expected} fields, this one {len(fields)}", number
        )
    return fields


def _count(text: str, number: int, what: str) -> int:
    try:
        return fen_from_digits(text)
    except ValueError as error:
        raise StatementMalformed(f"{what}: {error}", number) from None


def _detail(fields: list[str], number: int) -> StatementLine:
    _, seq_id, booked, direction, amount, balance, account, name, reference, memo = fields
    if not seq_id:
        raise StatementMalformed("no seqId", number)
    if direction not in _DIRECTIONS:
        raise StatementMalformed(f"direction is {direction!r}, not C or D", number)
    return StatementLine(
        number=number,
        bank_reference=seq_id,
        booked_at=local_time(booked, number, "the booking time"),
        direction=_DIRECTIONS[direction],
        amount_fen=amount_fen(amount, number),
        reference=optional(reference),
        counterparty_account_no=optional(account),
        counterparty_name=optional(name),
        memo=optional(memo),
        returned=direction == "C" and memo.startswith(RETURN_MEMO),
        balance_after_fen=signed_fen(balance, number, "balance after"),
    )


class UmsStatement(StreamedStatement):
    def _read(self, chunks: Iterable[bytes]) -> Generator[StatementLine, None, StatementSummary]:
        tally = self.tally
        header: _Header | None = None
        trailer: tuple[int, list[str]] | None = None
        number = 0
        for number, text in enumerate(text_lines(chunks, "utf-8"), 1):
            fields = _fields(text, number)
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
                yield tally.count(_detail(fields, number))
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
