from uuid import UUID

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import CurrentPrincipal
from app.auth.principal import Principal
from app.balances.schemas import BalanceView
from app.balances.service import figures, profile_of
from app.db.unit import Db
from app.institutions.repository import visible_institution
from app.kit.clock import utcnow

router = APIRouter(tags=["balances"])

DESCRIPTION = (
    "The figures of the minimum-balance rule (DOMAIN.md rule 8) as they stand now. Visible to the "
    "institution itself, its jurisdiction's regulator and the operator; 404 to anyone else."
)


async def _view(session: AsyncSession, caller: Principal, institution_id: UUID) -> BalanceView:
    institution = await visible_institution(session, caller, institution_id)
    profile = await profile_of(session, institution)
    return BalanceView.of(institution, await figures(session, institution, profile, utcnow()))


@router.get(
    "/v1/institutions/{institution_id}/balance",
    response_model=BalanceView,
    summary="An institution's balance view",
    description=DESCRIPTION,
)
@router.get(
    "/v1/regulator/institutions/{institution_id}/balance",
    response_model=BalanceView,
    summary="An institution's balance view (regulator)",
    description=DESCRIPTION,
)
async def balance(institution_id: UUID, caller: CurrentPrincipal, db: Db) -> BalanceView:
    return await db.run(lambda session: _view(session, caller, institution_id))
