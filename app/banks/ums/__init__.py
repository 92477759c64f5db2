"""The `ums` bank interface (spec /work/shared/banks/ums.md)."""

from app.banks.ums.adapter import UmsAdapter
from app.banks.ums.config import UmsConfig

ADAPTER = UmsAdapter()

__all__ = ["ADAPTER", "UmsAdapter", "UmsConfig"]
