"""The institution queries that need the caller: the one scope-checked lookup of an institution."""

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.auth.scope import sees_institution
from app.institutions.errors import InstitutionNotFound
from app.models import Institution


async def visible_institution(
    session: AsyncSession, caller: Principal, institution_id: UUID, *, lock: bool = False
) -> Institution:
    """The institution, to the operator, its regulator and itself; 404 to anyone else. `lock`
    takes its row lock (and reloads it)."""
    query = select(Institution).where(Institution.id == institution_id)
    if lock:
        query = query.with_for_update()
    institution = await session.scalar(query)
    if institution is None or not sees_institution(caller, institution):
        raise InstitutionNotFound(f"no institution {institution_id}")
    return institution
