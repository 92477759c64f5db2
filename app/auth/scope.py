"""Scope checks: may this caller see objects of this institution or enrollment? A caller that may
not gets 404 from the endpoint, exactly as if the object did not exist.

`scoped` is the one lookup of an institution's object by id with its scope check; each kind's
repository names it for its own model (`visible_payout`, `visible_lesson`, ...)."""

import functools
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar
from uuid import UUID

from sqlalchemy import ColumnElement, Select, bindparam, false, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.auth.principal import Principal
from app.kit.pagination import PageRequest, paginate
from app.models import Institution
from app.models.api_key import Role


def sees(
    principal: Principal,
    institution_id: UUID,
    jurisdiction_code: str,
    enrollment_id: UUID | None = None,
) -> bool:
    """The operator sees everything; a regulator its jurisdiction's institutions; an institution
    itself; a parent its enrollment (and what belongs to it)."""
    match principal.role:
        case Role.admin:
            return True
        case Role.regulator:
            return principal.jurisdiction_code == jurisdiction_code
        case Role.institution:
            return principal.institution_id == institution_id
        case Role.parent:
            return enrollment_id is not None and principal.enrollment_id == enrollment_id
        case _:
            return False


def sees_institution(principal: Principal, institution: Institution) -> bool:
    return sees(principal, institution.id, institution.jurisdiction_code)


class InstitutionObject(Protocol):
    """An object that belongs to an institution (a course, an enrollment, a lesson, ...)."""

    @property
    def institution_id(self) -> UUID: ...


Owned = TypeVar("Owned", bound=InstitutionObject)


async def scoped(
    session: AsyncSession,
    caller: Principal,
    model: type[Owned],
    object_id: UUID,
    *,
    enrollment_of: Callable[[Owned], UUID] | None = None,
    lock: bool = False,
) -> Owned | None:
    """The institution's object `model` with `object_id`, read with its institution's jurisdiction
    in one statement, if the caller sees it (`enrollment_of` names the enrollment it belongs to, for
    its parent); else None. `lock` takes the object's row lock (and reloads it)."""
    row = (await session.execute(_scoped_query(model, lock), {"object_id": object_id})).first()
    if row is None:
        return None
    found, jurisdiction_code = row
    enrollment_id = enrollment_of(found) if enrollment_of is not None else None
    if not sees(caller, found.institution_id, jurisdiction_code, enrollment_id):
        return None
    return found


@functools.cache
def _scoped_query(model: type[Any], lock: bool) -> Select[Any]:
    """`scoped`'s statement for `model`, built once (the object's id is a parameter)."""
    table: Any = model  # its columns, as the mapped class carries them
    query = (
        select(table, Institution.jurisdiction_code)
        .join(Institution, Institution.id == table.institution_id)
        .where(table.id == bindparam("object_id", type_=table.id.type))
    )
    return query.with_for_update(of=table) if lock else query


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


async def scoped_page(
    session: AsyncSession,
    caller: Principal,
    model: type[Owned],
    page: PageRequest,
    *,
    institution_id: UUID | None = None,
    oldest_by: str = "created_at",
    **equal_to: Any,
) -> tuple[Sequence[Owned], str | None]:
    """One page, oldest first (by the moment column `oldest_by`, then id), of the institutions'
    objects `model` the caller sees: optionally of one institution, and with each column of
    `equal_to` whose value is not None equal to it."""
    table: Any = model
    query = select(table).where(institution_scope(caller, table.institution_id))
    if institution_id is not None:
        query = query.where(table.institution_id == institution_id)
    for column, value in equal_to.items():
        if value is not None:
            query = query.where(getattr(table, column) == value)
    return await paginate(session, query, page, getattr(table, oldest_by), table.id)
