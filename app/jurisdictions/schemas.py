from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.jurisdictions.profile import RuleProfile
from app.kit.clock import Timestamp
from app.kit.text import Name

JURISDICTION_CODE_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
JurisdictionCode = Annotated[
    str,
    StringConstraints(pattern=JURISDICTION_CODE_PATTERN),
    Field(description="1 to 32 of `A-Z a-z 0-9 _ -`; it appears in paths, so it is never changed."),
]


class JurisdictionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: JurisdictionCode
    name: Name
    profile: RuleProfile = Field(
        default_factory=RuleProfile,
        description="The rule parameters of DOMAIN.md by name; omitted ones take their defaults.",
    )


class JurisdictionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    profile: RuleProfile = Field(description="Every rule parameter, defaults included.")
    created_at: Timestamp
    updated_at: Timestamp
