from datetime import date
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from app.kit.clock import Timestamp
from app.kit.text import Reason
from app.models.refund import RefundStatus


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class RefundRejection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class RefundOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    institution_id: UUID
    enrollment_id: UUID
    amount_fen: int = Field(
        description="Refundable when asked; once approved, the amount being paid back."
    )
    status: RefundStatus
    reason: str
    respond_by: date = Field(
        description="The institution answers by the end of this day; after it, the refund is approved."
    )
    reject_reason: str | None
    decided_by: str | None = Field(
        description="`institution`, `auto` (its silence), or `validity_ended` (asked for after the "
        "enrollment's `valid_until`: approved at once)."
    )
    instruction_id: str | None
    created_at: Timestamp
    updated_at: Timestamp
