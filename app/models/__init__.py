"""Every table, one file each. Importing this package registers them all on Base.metadata."""

from app.db.base import Base
from app.models.idempotency_record import IdempotencyRecord
from app.models.ledger_account import LedgerAccount
from app.models.ledger_entry import LedgerEntry
from app.models.ledger_head import LedgerHead
from app.models.ledger_posting import LedgerPosting
from app.models.ledger_transfer import LedgerTransfer

__all__ = [
    "Base",
    "IdempotencyRecord",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerHead",
    "LedgerPosting",
    "LedgerTransfer",
]
