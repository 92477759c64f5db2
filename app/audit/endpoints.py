from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from sqlalchemy import select, union
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import repository as repo
from app.audit import service
from app.audit.chain import PLATFORM_CHAIN
from app.audit.schemas import AuditItem, AuditPage, AuditVerificationOut
from app.auth.dependencies import AdminOrRegulator
from app.auth.principal import Principal
from app.db.unit import ReadDb
from app.institutions.repository import visible_institution
from app.kit.errors import Unprocessable
from app.kit.pagination import PageParams
from app.models import AuditHead
from app.models.api_key import Role

router = APIRouter(prefix="/v1/regulator/audit", tags=["audit"])


class InvalidPeriod(Unprocessable):
    code = "invalid_period"
    title = "since is after until"


InstitutionFilter = Annotated[UUID | None, Query(description="One institution's trail.")]
Since = Annotated[datetime | None, Query(description="From this moment on (inclusive).")]
Until = Annotated[datetime | None, Query(description="Before this moment (exclusive).")]
Action = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=60,
        description="One action, e.g. `institution.freeze` or `money.payment`.",
    ),
]


async def trail_filter(
    session: AsyncSession,
    caller: Principal,
    institution_id: UUID | None,
    since: datetime | None,
    until: datetime | None,
    action: str | None = None,
) -> service.TrailFilter:
    """The caller's view of the trail: a regulator sees its jurisdiction's (404 for an institution
    of another), the operator everything."""
    for moment in (since, until):
        if moment is not None and moment.tzinfo is None:
            raise InvalidPeriod("since and until need an offset (e.g. +08:00)")
    if since is not None and until is not None and since > until:
        raise InvalidPeriod("since is after until")
    if institution_id is not None:
        await visible_institution(session, caller, institution_id)
    regulator = caller.role is Role.regulator
    return service.TrailFilter(
        jurisdiction_code=caller.jurisdiction_code if regulator else None,
        own_key_id=str(caller.key_id) if regulator and caller.key_id else None,
        institution_id=institution_id,
        since=since,
        until=until,
        action=action,
    )


@router.get(
    "",
    response_model=AuditPage,
    summary="The audit trail: who did what, when, from where",
    description=(
        "Every regulator and operator action (`source` `action`) and every money movement "
        "(`source` `money`: a journal entry, with the key, bank or job that caused it), oldest "
        "first, each with the actor's role and key id, the action, its object, the institution, "
        "the client address and details. Filters: `institution_id`, `since` (inclusive), "
        "`until` (exclusive), `action`. A regulator sees its jurisdiction's institutions, the "
        "actions naming its jurisdiction and its own key's; `404` for an institution of another "
        "jurisdiction. The operator sees everything. `422 invalid_period` when `since` is after "
        "`until`."
    ),
)
async def audit_trail(
    caller: AdminOrRegulator,
    db: ReadDb,
    page: PageParams,
    institution_id: InstitutionFilter = None,
    since: Since = None,
    until: Until = None,
    action: Action = None,
) -> AuditPage:
    async def work(session: AsyncSession) -> AuditPage:
        where = await trail_filter(session, caller, institution_id, since, until, action)
        rows, next_cursor = await service.page(session, where, page)
        return AuditPage(items=[AuditItem.of(row) for row in rows], next_cursor=next_cursor)

    return await db.run(work)


def _chains(caller: Principal, institution_id: UUID | None) -> Any:
    """The chains the caller verifies: a list of ids, or a query of them."""
    if institution_id is not None:
        return [institution_id]
    if caller.role is Role.regulator:
        assert caller.jurisdiction_code is not None
        # Its institutions' chains and the platform's (which holds its profile changes).
        return union(
            repo.institutions_of(caller.jurisdiction_code),
            select(AuditHead.institution_id).where(AuditHead.institution_id == PLATFORM_CHAIN),
        )
    return select(AuditHead.institution_id)


@router.get(
    "/verify",
    response_model=AuditVerificationOut,
    summary="Verify the audit trail's hash chains",
    description=(
        "Recomputes every record's hash and link, chain by chain, and compares each chain's head "
        "with its last record: `intact`, how many chains and records were checked, and for the "
        "first broken chain its institution, the first bad record (`first_bad_seq`), how far it "
        "is intact (`verified_through_seq`) and what is wrong. `institution_id`: that "
        "institution's chain alone. A regulator verifies its institutions' chains and the "
        "platform's; the operator every chain. Money movements are verified with the journal "
        "(`GET /v1/regulator/ledger/verify`)."
    ),
)
async def verify_trail(
    caller: AdminOrRegulator, db: ReadDb, institution_id: InstitutionFilter = None
) -> AuditVerificationOut:
    async def work(session: AsyncSession) -> AuditVerificationOut:
        if institution_id is not None:
            await visible_institution(session, caller, institution_id)
        report = await service.verify(session, _chains(caller, institution_id))
        return AuditVerificationOut.of(report)

    return await db.run(work)
