"""Money is an int of fen, always."""

import re
from typing import Any

INT64_MAX = 2**63 - 1


def is_fen(value: Any) -> bool:
    """An exact integer amount of fen that fits a BIGINT (bool is not a number here)."""
    return type(value) is int and -INT64_MAX <= value <= INT64_MAX


def lessons_amount(total_fen: int, lessons: int, first_no: int, count: int) -> int:
    """The price of lessons `first_no` .. `first_no + count - 1` (numbered from 1) of a package of
    `lessons` lessons costing `total_fen`: each costs floor(total / lessons) and the last one takes
    the remainder, so the lessons of a package add up exactly to what was paid. The one place money
    is divided."""
    if not (1 <= first_no and count >= 1 and first_no + count - 1 <= lessons):
        raise ValueError(f"lessons {first_no}..{first_no + count - 1} are not within 1..{lessons}")
    price = total_fen // lessons
    amount = price * count
    if first_no + count - 1 == lessons:
        amount += total_fen - price * lessons
    return amount


_YUAN = re.compile(r"(0|[1-9][0-9]{0,16})(?:\.([0-9]{1,2}))?")
_FEN = re.compile(r"0|[1-9][0-9]{0,18}")


def fen_from_digits(text: str) -> int:
    """An amount in fen written as decimal digits ("12345"), exactly; ValueError otherwise."""
    if not _FEN.fullmatch(text):
        raise ValueError(f"not an amount in fen: {text!r}")
    value = int(text)
    if not is_fen(value):
        raise ValueError(f"amount out of range: {text!r}")
    return value


def fen_from_yuan(text: str) -> int:
    """An amount in yuan with at most two decimals ("1234.5", "1234.50"), as fen, exactly;
    ValueError for anything else (a third decimal, a sign, an exponent, spaces)."""
    match = _YUAN.fullmatch(text)
    if match is None:
        raise ValueError(f"not an amount in yuan with at most two decimals: {text!r}")
    whole, fraction = match.group(1), match.group(2) or ""
    value = int(whole) * 100 + int(fraction.ljust(2, "0"))
    if not is_fen(value):
        raise ValueError(f"amount out of range: {text!r}")
    return value


def yuan(fen: int) -> str:
    """Fen written as yuan with two decimals: 123450 -> "1234.50"."""
    if not is_fen(fen) or fen < 0:
        raise ValueError(f"not a non-negative amount of fen: {fen!r}")
    return f"{fen // 100}.{fen % 100:02d}"
