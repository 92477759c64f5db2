from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from app.kit.text import Reason
from app.models.wind_down import WindDownStatus


class WindDownOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class RefundTally(BaseModel):
    count: int
    amount_fen: int


class WindDownSummary(BaseModel):
    id: UUID
    institution_id: UUID
    status: WindDownStatus = Field(
        description="`running` while enrollments remain to go through (a run that died: order "
        "it again to resume), `completed` once every enrollment has been."
    )
    reason: str
    ordered_by: str = Field(description="The role and key id of whoever first ordered it.")
    ordered_at: datetime
    completed_at: datetime | None
    enrollments_total: int = Field(description="The institution's enrollments.")
    enrollments_covered: int = Field(
        description="Enrollments gone through so far (those with nothing unreleased need no refund)."
    )
    refunds: int = Field(description="Refunds the wind-down instructed, whatever became of them.")
    amount_fen: int = Field(description="What those refunds pay back, in fen.")
    awaiting_dispatch: RefundTally = Field(description="Approved, not yet sent to the bank.")
    sent: RefundTally = Field(description="At the bank, no result yet.")
    settled: RefundTally = Field(description="Paid back to the payer.")
    failed: RefundTally = Field(
        description="Refused by the bank: the money is back on the enrollment, refundable again."
    )
    returned: RefundTally = Field(description="Paid and came back (退票).")
