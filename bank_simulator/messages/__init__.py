"""Each bank's wire formats, from the bank's side: the notifications, results and statements it
sends, how it reads our instructions and how it answers them. One module per spec."""

from bank_simulator.messages.base import Dialect
from bank_simulator.messages.gmbank import GmbankDialect
from bank_simulator.messages.iso20022 import IsoDialect
from bank_simulator.messages.ums import UmsDialect

DIALECTS: dict[str, Dialect] = {
    "ums": UmsDialect(),
    "iso20022": IsoDialect(),
    "gmbank": GmbankDialect(),
}

__all__ = ["DIALECTS", "Dialect"]
