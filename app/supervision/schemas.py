from datetime import date
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from app.balances.schemas import BalanceView
from app.kit.clock import Timestamp
from app.kit.money import INT64_MAX
from app.models.institution import AlertLevel, InstitutionCategory, InstitutionStatus, ListStatus


class InstitutionBalance(BaseModel):
    """An institution with its balance view, as the regulator's list shows it."""

    id: UUID
    name: str
    uscc: str
    license_no: str
    category: InstitutionCategory
    jurisdiction_code: str
    bank_slug: str
    escrow_account_no: str
    status: InstitutionStatus
    list_status: ListStatus
    alert_level: AlertLevel = Field(description="The level now (the view's is as of `as_of`).")
    min_balance_floor_fen: int | None = Field(
        description="The regulator's floor for this institution; null takes the jurisdiction's."
    )
    created_at: Timestamp
    balance: BalanceView


class FloorChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_balance_floor_fen: Annotated[int, Field(strict=True, ge=0, le=INT64_MAX)] | None = Field(
        description="The institution's minimum balance floor in fen, a whole number from 0 to "
        '2^63 - 1 (a JSON integer: `"5"`, `1.5` and `-1` are refused with 422). `null` removes the '
        "institution's own floor, so the jurisdiction profile's `min_balance_floor_fen` applies "
        "again. F is then max(this floor, `min_balance_pct_of_unconsumed`% of U)."
    )


class LevelCounts(BaseModel):
    GREEN: int
    YELLOW: int
    RED: int
    FROZEN: int


class Summary(BaseModel):
    jurisdiction_code: str | None = Field(description="null: every jurisdiction (the operator).")
    institutions: int
    students_covered: int = Field(
        description="Distinct students (by identity number) with unconsumed money in an enrollment."
    )
    enrollments_covered: int = Field(description="Active enrollments with unconsumed money.")
    unconsumed_fen: int = Field(description="U summed: what students are owed, from the ledger.")
    bank_balance_fen: int = Field(
        description="The escrow balances the banks last reported, summed over the institutions "
        "whose bank has reported one."
    )
    institutions_reported_by_bank: int = Field(
        description="How many institutions' banks have reported a balance."
    )
    ledger_balance_fen: int = Field(description="Escrow cash in the ledger, summed.")
    levels: LevelCounts = Field(description="Institutions per alert level, every level present.")


class AlertStatus(StrEnum):
    open = "open"
    closed = "closed"


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    institution_id: UUID
    level: AlertLevel
    kind: str
    reason: str
    figures: dict[str, Any] | None = Field(
        default=None, description="The figures that opened the alert (amounts in fen)."
    )
    opened_at: Timestamp
    closed_at: Timestamp | None
    status: AlertStatus


class CheckpointStatus(StrEnum):
    matches = "matches"  # the journal's entry at the checkpoint's seq has its hash, chain intact
    disagrees = "disagrees"  # that entry is missing, has another hash, or the chain breaks first
    none = "none"  # no checkpoint published yet


class CheckpointComparison(BaseModel):
    status: CheckpointStatus
    day: date | None = None
    seq: int | None = None
    hash: str | None = None


class LedgerVerification(BaseModel):
    institution_id: UUID
    intact: bool = Field(description="The journal's chain, balances, transfers and counters agree.")
    verified_through_seq: int = Field(
        description="Every entry up to this one is as it was written (0: none)."
    )
    verified_through_hash: str | None = Field(
        description="That entry's chained SHA-256 (the empty journal's when 0)."
    )
    head_seq: int = Field(description="The journal's head as recorded.")
    first_bad_seq: int | None = Field(description="The first entry altered or missing.")
    problem: str | None = Field(description="The first thing found wrong; null when intact.")
    last_checkpoint: CheckpointComparison = Field(
        description="The latest published checkpoint, compared with the journal."
    )
