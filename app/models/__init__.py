"""Every table, one file each. Importing this package registers them all on Base.metadata."""

from app.db.base import Base
from app.models.alert import Alert
from app.models.alert_level_change import AlertLevelChange
from app.models.api_key import ApiKey
from app.models.audit_head import AuditHead
from app.models.audit_record import AuditRecord
from app.models.bank import Bank
from app.models.bank_message import BankMessage
from app.models.bank_nonce import BankNonce
from app.models.complaint import Complaint
from app.models.course import Course
from app.models.enrollment import Enrollment
from app.models.idempotency_record import IdempotencyRecord
from app.models.institution import Institution
from app.models.instruction import Instruction
from app.models.jurisdiction import Jurisdiction
from app.models.ledger_account import LedgerAccount
from app.models.ledger_checkpoint import LedgerCheckpoint
from app.models.ledger_entry import LedgerEntry
from app.models.ledger_head import LedgerHead
from app.models.ledger_posting import LedgerPosting
from app.models.ledger_transfer import LedgerTransfer
from app.models.lesson import Lesson
from app.models.opening_import import OpeningImport
from app.models.payout import Payout
from app.models.reconciliation import PendingMovement, ReconciliationBreak, ReconciliationRun
from app.models.refund import Refund
from app.models.security_event import SecurityEvent
from app.models.suspense_item import SuspenseItem
from app.models.wind_down import WindDown

__all__ = [
    "Alert",
    "AlertLevelChange",
    "ApiKey",
    "AuditHead",
    "AuditRecord",
    "Bank",
    "BankMessage",
    "BankNonce",
    "Base",
    "Complaint",
    "Course",
    "Enrollment",
    "IdempotencyRecord",
    "Institution",
    "Instruction",
    "Jurisdiction",
    "LedgerAccount",
    "LedgerCheckpoint",
    "LedgerEntry",
    "LedgerHead",
    "LedgerPosting",
    "LedgerTransfer",
    "Lesson",
    "OpeningImport",
    "Payout",
    "PendingMovement",
    "ReconciliationBreak",
    "ReconciliationRun",
    "Refund",
    "SecurityEvent",
    "SuspenseItem",
    "WindDown",
]
