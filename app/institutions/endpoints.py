import logging
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit
from app.auth.dependencies import Admin, AdminOrRegulator, CurrentPrincipal
from app.auth.principal import Principal
from app.db.unit import Db, ReadDb
from app.institutions import repository, service
from app.institutions.schemas import (
    CheckpointOut,
    InstitutionCreate,
    InstitutionOut,
    ListChange,
    StatusChange,
)
from app.jurisdictions.schemas import JURISDICTION_CODE_PATTERN
from app.kit.pagination import Page, PageParams
from app.models import Institution

router = APIRouter(tags=["institutions"])
logger = logging.getLogger(__name__)

SCOPE = "The operator and the regulator of the institution's jurisdiction; 404 to anyone else."


def _log_decision(caller: Principal, institution: Institution, decision: str, reason: str) -> None:
    # The level history records the decision too (alert_level_changes); the log keeps the trace.
    logger.info("institution %s: %s by %s: %s", institution.id, decision, caller.identity, reason)


async def _recorded(
    session: AsyncSession,
    caller: Principal,
    action: str,
    institution: Institution,
    details: dict[str, str],
) -> Institution:
    """The decision in the audit trail, in the unit of work that made it."""
    await audit.record(
        session,
        action,
        actor=caller,
        institution_id=institution.id,
        object_type="institution",
        object_id=institution.id,
        details=details,
    )
    return institution


@router.post(
    "/v1/institutions",
    status_code=201,
    response_model=InstitutionOut,
    summary="Onboard an institution",
    description=(
        "An institution with its escrow account, active and GREEN, its ledger accounts opened. "
        "Refusals: `422 invalid_uscc` (with the `reason`), `422 unknown_jurisdiction`, "
        "`409 institution_exists` when the USCC or the escrow account is taken (`field` says "
        "which). Operator only."
    ),
)
async def create_institution(body: InstitutionCreate, caller: Admin, db: Db) -> Institution:
    async def work(session: AsyncSession) -> Institution:
        institution = await service.create_institution(session, body)
        return await _recorded(
            session,
            caller,
            "institution.create",
            institution,
            {
                "name": institution.name,
                "uscc": institution.uscc,
                "jurisdiction_code": institution.jurisdiction_code,
                "bank_slug": institution.bank_slug,
            },
        )

    return await db.run(work)


@router.get(
    "/v1/institutions",
    response_model=Page[InstitutionOut],
    summary="Institutions",
    description=(
        "Oldest first. The operator sees all, optionally of one `jurisdiction_code`; a regulator "
        "sees its jurisdiction's."
    ),
)
async def list_institutions(
    caller: AdminOrRegulator,
    db: Db,
    page: PageParams,
    jurisdiction_code: Annotated[str | None, Query(pattern=JURISDICTION_CODE_PATTERN)] = None,
) -> Page[InstitutionOut]:
    rows, next_cursor = await db.run(
        lambda session: service.page(session, caller, page, jurisdiction_code)
    )
    return Page(items=[InstitutionOut.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/v1/institutions/{institution_id}",
    response_model=InstitutionOut,
    summary="An institution",
    description="To the operator, the institution itself and its jurisdiction's regulator; 404 "
    "to anyone else.",
)
async def get_institution(institution_id: UUID, caller: CurrentPrincipal, db: Db) -> Institution:
    return await db.run(
        lambda session: repository.visible_institution(session, caller, institution_id)
    )


@router.post(
    "/v1/regulator/institutions/{institution_id}/freeze",
    response_model=InstitutionOut,
    summary="Freeze an institution (冻结)",
    description=(
        "Status `frozen`, alert level `FROZEN`: no new enrollments and no payouts; refunds go on. "
        f"Freezing a frozen institution changes nothing. {SCOPE}"
    ),
)
async def freeze(
    institution_id: UUID, body: StatusChange, caller: AdminOrRegulator, db: Db
) -> Institution:
    async def work(session: AsyncSession) -> Institution:
        institution = await service.freeze(session, caller, institution_id, reason=body.reason)
        return await _recorded(
            session, caller, "institution.freeze", institution, {"reason": body.reason}
        )

    institution = await db.run(work)
    _log_decision(caller, institution, "frozen", body.reason)
    return institution


@router.post(
    "/v1/regulator/institutions/{institution_id}/unfreeze",
    response_model=InstitutionOut,
    summary="Unfreeze an institution",
    description=(
        "A frozen institution becomes `active` again; its alert level becomes the worst of its "
        "open alerts (`GREEN` when none), or stays `FROZEN` if it is blacklisted. The change is "
        f"recorded in the level history. {SCOPE}"
    ),
)
async def unfreeze(
    institution_id: UUID, body: StatusChange, caller: AdminOrRegulator, db: Db
) -> Institution:
    async def work(session: AsyncSession) -> Institution:
        institution = await service.unfreeze(session, caller, institution_id, reason=body.reason)
        return await _recorded(
            session, caller, "institution.unfreeze", institution, {"reason": body.reason}
        )

    institution = await db.run(work)
    _log_decision(caller, institution, "unfrozen", body.reason)
    return institution


LIST_DESCRIPTION = (
    "`black` (黑名单) holds the institution like a freeze: alert level `FROZEN`, no new "
    "enrollments, no payouts. `white` (白名单) and `none` lift a blacklisting (back to the "
    "worst open alert's level, `GREEN` when none, unless frozen). "
    f"`reason` is required (`422 validation_error` without one). {SCOPE}"
)


@router.put(
    "/v1/institutions/{institution_id}/list",
    response_model=InstitutionOut,
    summary="White- or blacklist an institution",
    description=LIST_DESCRIPTION,
)
@router.put(
    "/v1/regulator/institutions/{institution_id}/list",
    response_model=InstitutionOut,
    summary="White- or blacklist an institution (regulator)",
    description=LIST_DESCRIPTION,
)
async def set_list(
    institution_id: UUID, body: ListChange, caller: AdminOrRegulator, db: Db
) -> Institution:
    async def work(session: AsyncSession) -> Institution:
        institution = await service.set_list(
            session, caller, institution_id, body.list_status, reason=body.reason
        )
        return await _recorded(
            session,
            caller,
            "institution.list",
            institution,
            {"list_status": str(body.list_status), "reason": body.reason},
        )

    institution = await db.run(work)
    _log_decision(caller, institution, f"list {body.list_status}", body.reason)
    return institution


@router.get(
    "/v1/regulator/institutions/{institution_id}/ledger/checkpoints",
    response_model=Page[CheckpointOut],
    summary="The daily checkpoints of an institution's ledger",
    description=(
        "The institution's journal head as the `checkpoint_ledgers` job published it each day "
        "(append-only: the database refuses to change or delete one), oldest first. A regulator "
        "keeps a copy: a journal whose tail was removed and whose head was rolled back disagrees "
        "with a checkpoint published before, and `prepaid-guard verify-ledger` says so. " + SCOPE
    ),
)
async def checkpoints(
    institution_id: UUID, caller: AdminOrRegulator, db: ReadDb, page: PageParams
) -> Page[CheckpointOut]:
    async def work(session):
        await repository.visible_institution(session, caller, institution_id)
        return await repository.checkpoints_page(session, institution_id, page)

    rows, next_cursor = await db.run(work)
    return Page(items=[CheckpointOut.model_validate(row) for row in rows], next_cursor=next_cursor)
