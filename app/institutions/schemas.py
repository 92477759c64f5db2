from datetime import date
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.jurisdictions.schemas import JurisdictionCode
from app.kit.clock import Timestamp
from app.kit.text import Name, Reason
from app.models.institution import AlertLevel, InstitutionCategory, InstitutionStatus, ListStatus

AccountNo = Annotated[str, StringConstraints(pattern=r"^[0-9]{8,32}$")]
BankSlug = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9_-]{1,32}$"),
    Field(description="The custodian bank: 1 to 32 of `a-z 0-9 _ -`."),
]


class InstitutionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    uscc: Annotated[str, StringConstraints(max_length=64)] = Field(
        description="Unified social credit code (统一社会信用代码), 18 characters with a correct "
        "check character; spaces and hyphens are ignored. Else `422 invalid_uscc`."
    )
    license_no: Annotated[Name, StringConstraints(max_length=64)] = Field(
        description="The school-running licence (办学许可证) number."
    )
    category: InstitutionCategory
    jurisdiction_code: JurisdictionCode = Field(
        description="An existing jurisdiction, else `422 unknown_jurisdiction`."
    )
    bank_slug: BankSlug
    escrow_account_no: AccountNo = Field(
        description="The supervised escrow account (监管账户), 8 to 32 digits; one per institution."
    )
    basic_account_no: AccountNo = Field(
        description="The institution's basic account (基本账户) payouts go to, 8 to 32 digits."
    )
    basic_account_name: Name


class InstitutionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    uscc: str
    license_no: str
    category: InstitutionCategory
    jurisdiction_code: str
    bank_slug: str
    escrow_account_no: str
    basic_account_no: str
    basic_account_name: str
    status: InstitutionStatus
    list_status: ListStatus
    alert_level: AlertLevel
    min_balance_floor_fen: int | None = Field(
        description="The regulator's floor for this institution; null takes the jurisdiction's."
    )
    created_at: Timestamp
    updated_at: Timestamp


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class ListChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    list_status: ListStatus
    reason: Reason


class CheckpointOut(BaseModel):
    """An institution's journal head as published on a day: keep a copy, and `verify` against it."""

    model_config = ConfigDict(from_attributes=True)

    day: date = Field(description="The day (Asia/Shanghai) the head was published for.")
    seq: int = Field(description="The sequence number of the journal's last entry then.")
    hash: str = Field(description="That entry's chained SHA-256, hex.")
    taken_at: Timestamp
