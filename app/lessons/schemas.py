from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from app.enrollments.schemas import MAX_LESSONS
from app.kit.clock import Timestamp
from app.kit.text import NO_CONTROL_CHARACTERS, Reason
from app.models.lesson import LessonStatus

MAX_BATCH = 1000
# Beyond these a date is a typo, and beyond the calendar's range in any case; the bounds also keep
# conversions to local time away from datetime's limits.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _plausible(moment: datetime) -> datetime:
    if not EARLIEST <= moment < LATEST:
        raise ValueError(f"must be between {EARLIEST:%Y} and {LATEST:%Y}")
    return moment


LessonKey = Annotated[
    str,
    # The institution's own id for the lesson record: printable, no control characters.
    StringConstraints(min_length=1, max_length=100, pattern=NO_CONTROL_CHARACTERS),
]
OccurredAt = Annotated[AwareDatetime, AfterValidator(_plausible)]
Count = Annotated[int, Field(strict=True, gt=0, le=MAX_LESSONS)]


class LessonCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lesson_key: LessonKey = Field(
        description="The institution's own id for this record, unique within the institution: "
        "sending it again with the same lesson returns the first record."
    )
    occurred_at: OccurredAt = Field(
        description="When the lesson was given, with its offset: not in the future, not before "
        "the payment, on a day the payment covers, at most `max_lesson_backdate_days` ago."
    )
    count: Count = Field(default=1, description="How many lessons this record consumes.")


class LessonItem(LessonCreate):
    enrollment_id: UUID


class LessonBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[LessonItem] = Field(min_length=1, max_length=MAX_BATCH)


class ItemStatus(StrEnum):
    accepted = "accepted"
    replayed = "replayed"  # the key was recorded before with the same lesson: that record
    refused = "refused"


class BatchItemResult(BaseModel):
    lesson_key: str
    status: ItemStatus
    id: UUID | None = Field(default=None, description="The lesson, when accepted or replayed.")
    amount_fen: int | None = Field(
        default=None, description="Its price, when accepted or replayed."
    )
    code: str | None = Field(default=None, description="Why it was refused, as a problem's `code`.")
    detail: str | None = None


class BatchResult(BaseModel):
    results: list[BatchItemResult] = Field(description="One per item, in the order sent.")


class Dispute(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class Party(StrEnum):
    institution = "institution"
    parent = "parent"


class Resolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    in_favor_of: Party
    note: Reason | None = None


class LessonOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    enrollment_id: UUID
    lesson_key: str
    status: LessonStatus
    count: int
    amount_fen: int = Field(
        description="Price of the lessons by the remainder rule: the package's amount divided by "
        "its lessons, rounded down; the record completing the package takes the rest."
    )
    occurred_at: Timestamp
    confirm_due_on: date = Field(
        description="The parent answers by the end of this day (Asia/Shanghai): "
        "`parent_auto_confirm_workdays` working days after the later of the lesson's day and the "
        "day it was recorded; after it the lesson is auto-confirmed."
    )
    dispute_reason: str | None
    decided_by: str | None = Field(
        description="`parent`, `auto`, `regulator` or `institution`, once decided."
    )
    decided_at: Timestamp | None
    resolution_note: str | None
    created_at: Timestamp
