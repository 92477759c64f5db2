from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from app.institutions.schemas import BankSlug
from app.jurisdictions.schemas import JurisdictionCode
from app.kit.clock import Timestamp
from app.kit.text import Name
from app.models.api_key import Role


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role = Field(
        description="`parent` keys are not issued here: each comes with its enrollment."
    )
    name: Name
    jurisdiction_code: JurisdictionCode | None = Field(
        default=None, description="Required for `regulator`, and only for it."
    )
    institution_id: UUID | None = Field(
        default=None, description="Required for `institution`, and only for it."
    )
    bank_slug: BankSlug | None = Field(
        default=None, description="Required for `bank`, and only for it."
    )


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    role: Role
    key_prefix: str = Field(description="The key's first characters, to tell keys apart.")
    jurisdiction_code: str | None
    institution_id: UUID | None
    enrollment_id: UUID | None
    bank_slug: str | None
    created_at: Timestamp
    revoked_at: Timestamp | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself. Shown this once: it is stored only hashed.")
