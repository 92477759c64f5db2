"""Scope checks: may this caller see objects of this institution or enrollment? A caller that may
not gets 404 from the endpoint, exactly as if the object did not exist."""

from uuid import UUID

from app.auth.principal import Principal
from app.models import Institution
from app.models.api_key import Role


def sees_institution(principal: Principal, institution: Institution) -> bool:
    match principal.role:
        case Role.admin:
            return True
        case Role.regulator:
            return principal.jurisdiction_code == institution.jurisdiction_code
        case Role.institution:
            return principal.institution_id == institution.id
        case _:
            return False


def sees_enrollment(principal: Principal, institution: Institution, enrollment_id: UUID) -> bool:
    """The enrollment's parent, and whoever sees its institution."""
    if principal.role is Role.parent:
        return principal.enrollment_id == enrollment_id
    return sees_institution(principal, institution)
