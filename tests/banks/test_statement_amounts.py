"""A statement's amounts and balances, read the quick way for the usual forms and by the full check
for the rest: whatever the text, the reader takes exactly what the rules of app.kit.money take
(fen as digits, yuan with exactly two decimals, a balance may be below zero, an amount may not)."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.banks.protocol import StatementMalformed
from app.banks.statement_reading import amount_fen, amount_yuan, balance_fen, balance_yuan
from app.kit.money import fen_from_digits, fen_from_yuan

# What a bank might write, and what it must not: signs, separators, an exponent, a space, digits
# that are not ASCII (which int() would take).
TEXT = st.one_of(
    st.text(alphabet="0123456789.-+ ,e_１٣", max_size=24),
    st.integers(-(10**20), 10**20).map(str),
    st.integers(-(10**20), 10**20).map(lambda fen: f"{fen // 100}.{fen % 100:02d}"),
)


def in_fen(text: str) -> int | None:
    try:
        return fen_from_digits(text)
    except ValueError:
        return None


def in_yuan(text: str) -> int | None:
    if re.fullmatch(r"[0-9]+\.[0-9]{2}", text) is None:
        return None
    try:
        return fen_from_yuan(text)
    except ValueError:
        return None


def signed(read, text: str) -> int | None:  # type: ignore[no-untyped-def]
    negative = text.startswith("-")
    fen = read(text[1:] if negative else text)
    return None if fen is None else -fen if negative else fen


def outcome(read, *args: object) -> int | None:  # type: ignore[no-untyped-def]
    try:
        return read(*args)  # type: ignore[no-any-return]
    except StatementMalformed as error:
        assert error.line == 7
        return None


@given(TEXT)
def test_an_amount_is_read_as_the_rules_read_it(text: str) -> None:
    for read, rule in ((amount_fen, in_fen), (amount_yuan, in_yuan)):
        want = rule(text)
        assert outcome(read, text, 7) == (want if want is not None and want > 0 else None), read


@given(TEXT)
def test_a_balance_is_read_as_the_rules_read_it(text: str) -> None:
    for read, rule in ((balance_fen, in_fen), (balance_yuan, in_yuan)):
        assert outcome(read, text, 7, "balance") == signed(rule, text), read


@pytest.mark.parametrize(
    ("text", "fen"), [("1", 1), ("120", 120), ("9223372036854775807", 2**63 - 1)]
)
def test_fen_up_to_a_bigint(text: str, fen: int) -> None:
    assert amount_fen(text, 1) == balance_fen(text, 1, "balance") == fen
    with pytest.raises(StatementMalformed):
        amount_fen("9223372036854775808", 1)


@pytest.mark.parametrize(("text", "fen"), [("0.01", 1), ("1234.50", 123450), ("-5.00", -500)])
def test_yuan_with_two_decimals(text: str, fen: int) -> None:
    assert balance_yuan(text, 1, "balance") == fen
