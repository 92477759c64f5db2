"""Who is calling: the role and scope of the API key the request carries."""

from dataclasses import dataclass
from uuid import UUID

from app.models.api_key import Role


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    key_id: UUID | None  # None for the ADMIN_API_KEY of the environment
    jurisdiction_code: str | None = None  # regulator
    institution_id: UUID | None = None  # institution
    enrollment_id: UUID | None = None  # parent
    bank_slug: str | None = None  # bank

    @property
    def identity(self) -> str:
        """Stable per key: whose Idempotency-Key records are whose."""
        return f"{self.role}:{self.key_id or 'environment'}"
