"""Who is calling: the role and scope of the API key the request carries.

`Principal` is any caller; each role has its own type, carrying the one scope that role has as a
required field, so that an endpoint for one role is handed that role's scope without checking."""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from app.models.api_key import Role


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    role: Role
    key_id: UUID | None  # None for the ADMIN_API_KEY of the environment
    jurisdiction_code: str | None = None  # regulator
    institution_id: UUID | None = None  # institution
    enrollment_id: UUID | None = None  # parent
    bank_slug: str | None = None  # bank

    @property
    def identity(self) -> str:
        """Stable per key."""
        return f"{self.role}:{self.key_id or 'environment'}"


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminPrincipal(Principal):
    role: Role = Role.admin


@dataclass(frozen=True, slots=True, kw_only=True)
class RegulatorPrincipal(Principal):
    role: Role = Role.regulator
    jurisdiction_code: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InstitutionPrincipal(Principal):
    role: Role = Role.institution
    institution_id: UUID


@dataclass(frozen=True, slots=True, kw_only=True)
class ParentPrincipal(Principal):
    role: Role = Role.parent
    enrollment_id: UUID


@dataclass(frozen=True, slots=True, kw_only=True)
class BankPrincipal(Principal):
    role: Role = Role.bank
    bank_slug: str


PRINCIPAL_OF_ROLE: dict[Role, type[Principal]] = {
    Role.admin: AdminPrincipal,
    Role.regulator: RegulatorPrincipal,
    Role.institution: InstitutionPrincipal,
    Role.parent: ParentPrincipal,
    Role.bank: BankPrincipal,
}


def principal_of(role: Role, key_id: UUID | None, **scope: Any) -> Principal:
    """The typed principal of a key of `role` with its scope columns (those of other roles None)."""
    return PRINCIPAL_OF_ROLE[role](
        key_id=key_id, **{name: value for name, value in scope.items() if value is not None}
    )
