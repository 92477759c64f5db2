"""Why the ledger refuses an entry. Each is a DomainError, so the API renders it as problem+json."""

from app.kit.errors import Conflict, NotFound, Unprocessable


class LedgerError(Exception):
    """Marker shared by every ledger refusal, so batch callers can tell a refusal from a crash."""


class InvalidEntry(LedgerError, Unprocessable):
    code = "invalid_entry"
    title = "Invalid journal entry"


class InvalidAmount(LedgerError, Unprocessable):
    code = "invalid_amount"
    title = "Invalid amount"


class UnbalancedEntry(LedgerError, Unprocessable):
    code = "unbalanced_entry"
    title = "Entry does not balance"


class UnknownAccount(LedgerError, Unprocessable):
    code = "unknown_account"
    title = "Unknown account"


class CrossInstitutionEntry(LedgerError, Unprocessable):
    code = "cross_institution_entry"
    title = "Entry mixes institutions"


class InsufficientBalance(LedgerError, Conflict):
    code = "insufficient_balance"
    title = "Insufficient balance"


class BalanceOutOfRange(LedgerError, Conflict):
    code = "balance_out_of_range"
    title = "Balance out of range"


class IdempotencyKeyReused(LedgerError, Unprocessable):
    code = "idempotency_key_reused"
    title = "Idempotency key reused with different content"


class TransferNotFound(LedgerError, NotFound):
    code = "transfer_not_found"
    title = "Transfer not found"


class TransferAlreadyResolved(LedgerError, Conflict):
    code = "transfer_already_resolved"
    title = "Transfer already resolved"


class LedgerNotFound(LedgerError, NotFound):
    code = "ledger_not_found"
    title = "No ledger for this institution"
