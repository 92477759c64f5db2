"""The institution queries: the one scope-checked lookup of an institution, and the daily checkpoints
of its ledger that regulators keep."""

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.auth.scope import sees_institution
from app.institutions.errors import InstitutionNotFound
from app.kit.pagination import PageRequest, paginate
from app.models import Institution, LedgerCheckpoint

# Built once: the institution's id is a parameter.
_READ = select(Institution).where(
    Institution.id == bindparam("institution_id", type_=Institution.id.type)
)
_LOCKED = _READ.with_for_update()


async def visible_institution(
    session: AsyncSession, caller: Principal, institution_id: UUID, *, lock: bool = False
) -> Institution:
    """The institution, to the operator, its regulator and itself; 404 to anyone else. `lock`
    takes its row lock (and reloads it)."""
    institution = await session.scalar(
        _LOCKED if lock else _READ, {"institution_id": institution_id}
    )
    if institution is None or not sees_institution(caller, institution):
        raise InstitutionNotFound(f"no institution {institution_id}")
    return institution


async def checkpoints_page(
    session: AsyncSession, institution_id: UUID, page: PageRequest
) -> tuple[Sequence[LedgerCheckpoint], str | None]:
    """The institution's published journal heads, oldest first (one a day, so `taken_at` orders)."""
    query = select(LedgerCheckpoint).where(LedgerCheckpoint.institution_id == institution_id)
    return await paginate(
        session, query, page, LedgerCheckpoint.taken_at, LedgerCheckpoint.institution_id
    )
