from uuid import UUID

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import AdminOrRegulator
from app.db.unit import Db
from app.institutions.repository import visible_institution
from app.winddown import service
from app.winddown.schemas import WindDownOrder, WindDownSummary

router = APIRouter(tags=["regulator"])

SCOPE = "The operator and the regulator of the institution's jurisdiction; 404 to anyone else."


@router.post(
    "/v1/regulator/institutions/{institution_id}/wind-down",
    status_code=202,
    response_model=WindDownSummary,
    summary="Wind an institution down (机构退费清算)",
    description=(
        "Freezes the institution and refunds every enrollment's money not yet released to it "
        "(lessons pending confirmation or in dispute are resolved for the parent first) to its "
        "payer, by the original route, through the normal refund instructions, which the "
        "`dispatch_instructions` job sends. A refund request still awaiting the institution's "
        "answer is approved with everything refundable instead of being doubled. Each enrollment "
        "is refunded once however often this is called: a call after a run that died half-way "
        "resumes it, and two at once take turns. Answers with the summary "
        "(`refunds` and `amount_fen`: what the wind-down has instructed). `reason` is required "
        f"(422 without). {SCOPE}"
    ),
)
async def wind_down(
    institution_id: UUID, body: WindDownOrder, caller: AdminOrRegulator, db: Db
) -> WindDownSummary:
    # Each batch commits on its own, so the work runs outside a request's transaction (which an
    # Idempotency-Key would give it): a run that dies keeps what it committed.
    return await service.wind_down(db.for_jobs(), caller, institution_id, body.reason)


@router.get(
    "/v1/regulator/institutions/{institution_id}/wind-down",
    response_model=WindDownSummary,
    summary="The wind-down of an institution and its progress",
    description=(
        "Enrollments gone through, and the refunds instructed, sent, settled, failed and returned "
        "with their amounts. `404 wind_down_not_found` when the institution has not been wound "
        f"down. {SCOPE}"
    ),
)
async def wind_down_summary(
    institution_id: UUID, caller: AdminOrRegulator, db: Db
) -> WindDownSummary:
    async def work(session: AsyncSession) -> WindDownSummary:
        await visible_institution(session, caller, institution_id)
        return await service.summary(session, institution_id)

    return await db.run(work)
