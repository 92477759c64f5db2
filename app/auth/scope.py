"""Scope checks: may this caller see objects of this institution or enrollment? A caller that may
not gets 404 from the endpoint, exactly as if the object did not exist."""

from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.orm import InstrumentedAttribute

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


def institution_scope(
    principal: Principal, institution_id: InstrumentedAttribute[Any]
) -> ColumnElement[bool]:
    """`sees_institution` as a condition on a list's `institution_id` column: the rows of the
    institutions the caller sees, so a list never carries another institution's objects."""
    match principal.role:
        case Role.admin:
            return true()
        case Role.regulator:
            return institution_id.in_(
                select(Institution.id).where(
                    Institution.jurisdiction_code == principal.jurisdiction_code
                )
            )
        case Role.institution:
            return institution_id == principal.institution_id
        case _:
            return false()
