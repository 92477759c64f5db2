from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.kit.clock import Timestamp
from app.kit.text import Reason
from app.models.complaint import ComplaintCategory, ComplaintOutcome, ComplaintStatus

MAX_TEXT_LENGTH = 2000

# A parent's own words: several lines allowed (tabs and line feeds), no other control characters,
# not blank, at most MAX_TEXT_LENGTH characters once trimmed.
ComplaintText = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=MAX_TEXT_LENGTH,
        pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]+$",
    ),
]


class ComplaintCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enrollment_id: UUID
    category: ComplaintCategory
    text: ComplaintText
    lesson_id: UUID | None = Field(
        default=None,
        description="A lesson of the enrollment the complaint is about: it is disputed too.",
    )


class ComplaintResolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: ComplaintOutcome
    note: Reason


class ComplaintOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    institution_id: UUID
    enrollment_id: UUID
    lesson_id: UUID | None
    category: ComplaintCategory
    text: str
    lesson_disputed: bool = Field(
        description="The lesson is in dispute: disputed by this complaint, or before it. False "
        "when the lesson was no longer pending (confirmed, auto-confirmed, resolved) or its time "
        "to answer had passed: the complaint stands, the lesson stays as it was."
    )
    status: ComplaintStatus
    outcome: ComplaintOutcome | None
    note: str | None
    resolved_by: str | None
    created_at: Timestamp
    resolved_at: datetime | None
