from uuid import UUID

from fastapi import APIRouter

from app.alerts import repository
from app.alerts.schemas import LevelChangeOut
from app.auth.dependencies import AdminOrRegulator
from app.db.unit import ReadDb
from app.institutions.repository import visible_institution
from app.kit.pagination import Page, PageParams

router = APIRouter(tags=["alerts"])


@router.get(
    "/v1/regulator/institutions/{institution_id}/level-changes",
    response_model=Page[LevelChangeOut],
    summary="An institution's alert level history",
    description=(
        "Every change of the institution's alert level (GREEN, YELLOW, RED, FROZEN), oldest "
        "first: from and to, the cause (the alert that opened or closed, or the regulator's "
        "decision) and who or what caused it. Insert-only. `limit` per page; pass "
        "`next_cursor` back as `cursor` for more. The operator and the regulator of the "
        "institution's jurisdiction; 404 to anyone else."
    ),
)
async def level_changes(
    institution_id: UUID, caller: AdminOrRegulator, db: ReadDb, page: PageParams
) -> Page[LevelChangeOut]:
    async def work(session):
        await visible_institution(session, caller, institution_id)
        return await repository.level_changes_page(session, institution_id, page)

    rows, next_cursor = await db.run(work)
    return Page(items=[LevelChangeOut.model_validate(row) for row in rows], next_cursor=next_cursor)
