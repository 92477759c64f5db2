from datetime import date
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from app.kit.clock import Timestamp
from app.models.payout import PayoutStatus


class PayoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_fen: Annotated[int, Field(strict=True, gt=0, lt=2**63)] | None = Field(
        default=None,
        description="Fen to pay out; omitted: the most the minimum-balance rule allows.",
    )


class PayoutOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    institution_id: UUID
    amount_fen: int
    status: PayoutStatus
    trigger: str = Field(
        description="`request` (asked for through the API) or `release_job` (T+1)."
    )
    business_date: date
    instruction_id: str = Field(description="Our reference in the bank instruction.")
    created_at: Timestamp
    updated_at: Timestamp
