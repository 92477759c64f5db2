from datetime import date
from typing import Annotated, Self
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from app.kit.clock import Timestamp
from app.kit.text import Name
from app.models.institution import InstitutionCategory

# A lesson dearer than 100 million yuan is a typo; the bound keeps price times lessons in a BIGINT.
MAX_LESSON_PRICE_FEN = 10**10


class CourseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    category: InstitutionCategory
    lesson_price_fen: Annotated[int, Field(strict=True, gt=0, le=MAX_LESSON_PRICE_FEN)] = Field(
        description="The one price of every lesson: a bigger package costs more lessons at this "
        "price, never less per lesson (no tiered prepay discount)."
    )
    starts_on: date
    ends_on: date = Field(description="The last day of the course; on or after `starts_on`.")

    @model_validator(mode="after")
    def ends_after_start(self) -> Self:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on must be on or after starts_on")
        return self


class CourseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    institution_id: UUID
    name: str
    category: InstitutionCategory
    lesson_price_fen: int
    starts_on: date
    ends_on: date
    created_at: Timestamp
