"""Money is an int of fen, always."""

from typing import Any

INT64_MAX = 2**63 - 1


def is_fen(value: Any) -> bool:
    """An exact integer amount of fen that fits a BIGINT (bool is not a number here)."""
    return type(value) is int and -INT64_MAX <= value <= INT64_MAX
