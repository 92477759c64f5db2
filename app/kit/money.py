"""Money is an int of fen, always."""

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
