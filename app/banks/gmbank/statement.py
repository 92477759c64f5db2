"""The gmbank daily statement (gmbank.md "Statement"): a GBK CSV, a header row, a row per movement
naming its account, then the opening and closing balances in two rows of their own. Amounts are
yuan with two decimals. Errors name the file's line, which is the row's unless a quoted field
holds a line break."""

import csv
from collections.abc import Generator, Iterable, Iterator
from itertools import chain

from app.banks.protocol import Direction, StatementLine, StatementMalformed, StatementSummary
from app.banks.statement_reading import (
    LocalTimes,
    StreamedStatement,
    amount_yuan,
    balance_yuan,
    signed_fen,
    text_batches,
)

HEADER = ["账号", "交易日期", "交易时间", "流水号", "借贷标志", "金额", "余额", "对方账号", "对方户名", "摘要", "业务参考号"]  # fmt: skip
OPENING, CLOSING = "期初余额", "期末余额"
_DIRECTIONS = {"贷": Direction.credit, "借": Direction.debit}
# The bank writes a returned payout or refund (退票) as a credit whose 摘要 begins so.
RETURN_MEMO = "RETURN"


def _rows(chunks: Iterable[bytes]) -> Iterator[tuple[int, list[str]]]:
    """Each CSV row with the line it ends on. A line with neither a quote nor a carriage return,
    nearly every one, splits at its commas exactly as the csv module would split it; the module
    reads the others, joining a quoted field's lines itself."""
    lines = chain.from_iterable(text_batches(chunks, "gbk"))
    number = 0
    for text in lines:
        number += 1
        if text and '"' not in text and "\r" not in text:
            yield number, text.split(",")
            continue
        # The module is given the line breaks back: a quoted field keeps them.
        reader = csv.reader(line + "\n" for line in chain([text], lines))
        try:
            row = next(reader)
        except csv.Error as error:
            raise StatementMalformed(f"not CSV: {error}", number + reader.line_num - 1) from None
        number += reader.line_num - 1
        yield number, row


def _detail(row: list[str], number: int, booked_at: LocalTimes) -> tuple[str, StatementLine]:
    if len(row) != len(HEADER):
        raise StatementMalformed(f"a row has {len(HEADER)} fields, this one {len(row)}", number)
    account_no, day, time, serial, flag, amount, balance, account, name, memo, reference = row
    if not account_no:
        raise StatementMalformed("no 账号", number)
    if not serial:
        raise StatementMalformed("no 流水号", number)
    if flag not in _DIRECTIONS:
        raise StatementMalformed(f"借贷标志 is {flag!r}, not 贷 or 借", number)
    moment = day + time
    line = StatementLine(  # by position: a million lines a day pay for keywords
        number,
        serial,  # bank_reference
        booked_at.get(moment) or booked_at.parse(moment, number, "交易日期 and 交易时间"),
        _DIRECTIONS[flag],
        amount_yuan(amount, number),
        reference or None,
        account or None,  # counterparty_account_no
        name or None,  # counterparty_name
        memo or None,
        flag == "贷" and memo.startswith(RETURN_MEMO),  # returned
        balance_yuan(balance, number, "余额"),  # balance_after_fen
    )
    return account_no, line


def _balance(row: list[str], number: int, label: str) -> int:
    if len(row) != 2 or row[0] != label:
        raise StatementMalformed(f"expected the row {label},<yuan>", number)
    return signed_fen(row[1], number, label, in_yuan=True)


class GmbankStatement(StreamedStatement):
    def _read(self, chunks: Iterable[bytes]) -> Generator[StatementLine, None, StatementSummary]:
        tally = self.tally
        rows = _rows(chunks)
        booked_at = LocalTimes()
        number, header = next(rows, (1, []))
        if header != HEADER:
            raise StatementMalformed(f"the header row is not {','.join(HEADER)}", number)
        for number, row in rows:
            if row and row[0] == OPENING:
                opening = _balance(row, number, OPENING)
                break
            account_no, line = _detail(row, number, booked_at)
            yield tally.count(line, account_no)
        else:
            raise StatementMalformed(f"no {OPENING} row: the file is cut short", number + 1)
        number, row = next(rows, (number + 1, []))
        closing = _balance(row, number, CLOSING)
        if (extra := next(rows, None)) is not None:
            raise StatementMalformed(f"a row after {CLOSING}", extra[0])
        return tally.summary(opening, closing, number)
