"""The iso20022 bank adapter (spec: shared/banks/iso20022.md)."""

from app.banks.iso20022.adapter import Iso20022Adapter
from app.banks.iso20022.config import Iso20022Config
from app.banks.protocol import BankAdapter

ADAPTER: BankAdapter = Iso20022Adapter()

__all__ = ["ADAPTER", "Iso20022Adapter", "Iso20022Config"]
