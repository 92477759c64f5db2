from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit
from app.auth.dependencies import Admin, AdminOrRegulator
from app.db.unit import Db
from app.jurisdictions import service
from app.jurisdictions.profile import RuleProfile
from app.jurisdictions.schemas import JURISDICTION_CODE_PATTERN, JurisdictionCreate, JurisdictionOut
from app.models import Jurisdiction

router = APIRouter(prefix="/v1/jurisdictions", tags=["jurisdictions"])

Code = Annotated[str, Path(pattern=JURISDICTION_CODE_PATTERN)]

VALIDATION = (
    "Every parameter is validated: amounts and counts are whole numbers, none negative, caps at "
    "least 1, percentages from 0 to 100; an unknown name is refused, so a typo never leaves a "
    "default in force (`422 validation_error`, naming the field)."
)


@router.post(
    "",
    status_code=201,
    response_model=JurisdictionOut,
    summary="Onboard a jurisdiction",
    description=(
        "A supervising area (a county's education bureau) with its rule profile; parameters left "
        f"out take the defaults of DOMAIN.md. {VALIDATION} A code in use is `409 "
        "jurisdiction_exists`. Operator only."
    ),
)
async def create_jurisdiction(body: JurisdictionCreate, caller: Admin, db: Db) -> Jurisdiction:
    async def work(session: AsyncSession) -> Jurisdiction:
        jurisdiction = await service.create_jurisdiction(session, body)
        await audit.record(
            session,
            "jurisdiction.create",
            actor=caller,
            object_type="jurisdiction",
            object_id=body.code,
            details={"jurisdiction_code": body.code, "name": body.name},
        )
        return jurisdiction

    return await db.run(work)


@router.get(
    "/{code}",
    response_model=JurisdictionOut,
    summary="A jurisdiction and its rule profile",
    description="To the operator and the jurisdiction's own regulator; 404 to anyone else.",
)
async def get_jurisdiction(code: Code, caller: AdminOrRegulator, db: Db) -> Jurisdiction:
    return await db.run(lambda session: service.visible_jurisdiction(session, caller, code))


@router.put(
    "/{code}/profile",
    response_model=RuleProfile,
    summary="Replace a jurisdiction's rule profile",
    description=(
        "The whole profile is replaced: parameters left out go back to their defaults. "
        f"{VALIDATION} The operator and the jurisdiction's own regulator; 404 to anyone else."
    ),
)
async def replace_profile(
    code: Code, profile: RuleProfile, caller: AdminOrRegulator, db: Db
) -> RuleProfile:
    async def work(session: AsyncSession) -> RuleProfile:
        replaced = await service.replace_profile(session, caller, code, profile)
        await audit.record(
            session,
            "jurisdiction.profile",
            actor=caller,
            object_type="jurisdiction",
            object_id=code,
            details={"jurisdiction_code": code, "profile": replaced.model_dump(mode="json")},
        )
        return replaced

    return await db.run(work)
