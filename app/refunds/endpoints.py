from uuid import UUID

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import CurrentPrincipal, InstitutionCaller, InstitutionViewer, Parent
from app.db.unit import Db
from app.kit.clock import utcnow
from app.kit.errors import NotFound
from app.kit.pagination import Page, PageParams
from app.models import Enrollment, Refund
from app.models.refund import RefundStatus
from app.refunds import repository, service
from app.refunds.schemas import RefundOut, RefundRejection, RefundRequest

router = APIRouter(tags=["refunds"])


@router.post(
    "/v1/enrollments/{enrollment_id}/refunds",
    status_code=201,
    response_model=RefundOut,
    summary="Ask for a refund (parent)",
    description=(
        "Refunds what was paid less the lessons confirmed, pending or disputed. The institution "
        "answers within `institution_refund_response_workdays` working days, else the refund is "
        "approved. Asked for after the enrollment's `valid_until`, it is approved at once "
        "(`status: approved`, `decided_by: validity_ended`): the institution has no say over "
        "money for days the payment no longer covers. Never blocked by the minimum balance, nor "
        "by the institution's state. `409 nothing_refundable`, `409 refund_in_progress`."
    ),
)
async def request_refund(
    enrollment_id: UUID, body: RefundRequest, caller: Parent, db: Db
) -> Refund:
    async def work(session: AsyncSession) -> Refund:
        enrollment = await session.scalar(select(Enrollment).where(Enrollment.id == enrollment_id))
        if enrollment is None or caller.enrollment_id != enrollment_id:
            raise NotFound(f"no enrollment {enrollment_id}")
        return await service.request_refund(
            session, enrollment.institution_id, enrollment_id, body.reason, utcnow()
        )

    return await db.run(work)


@router.get(
    "/v1/refunds",
    response_model=Page[RefundOut],
    summary="Refund requests",
    description=(
        "The refund requests made to the institution, oldest first, `limit` per page; pass "
        "`next_cursor` back as `cursor` for more. An institution sees those made to it, a "
        "regulator its jurisdiction's, the operator all; `status` (e.g. `requested`: those "
        "awaiting an answer) and `institution_id` narrow the list."
    ),
)
async def list_refunds(
    caller: InstitutionViewer,
    db: Db,
    page: PageParams,
    status: RefundStatus | None = None,
    institution_id: UUID | None = None,
) -> Page[RefundOut]:
    rows, next_cursor = await db.run(
        lambda session: repository.page(session, caller, institution_id, status, page)
    )
    return Page(items=[RefundOut.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/v1/refunds/{refund_id}",
    response_model=RefundOut,
    summary="A refund and its status",
    description=(
        "Status `requested`, `approved`, `rejected`, `sent`, `settled`, `failed` or `returned`. "
        "Visible to the enrollment's parent, its institution, the institution's regulator and the "
        "operator; 404 to anyone else."
    ),
)
async def get_refund(refund_id: UUID, caller: CurrentPrincipal, db: Db) -> Refund:
    return await db.run(lambda session: repository.visible_refund(session, caller, refund_id))


@router.post(
    "/v1/refunds/{refund_id}/approve",
    response_model=RefundOut,
    summary="Approve a refund (institution)",
    description=(
        "Pays back what is refundable now. `409 refund_not_requested` once answered: of an "
        "approval and a rejection sent together, the first decides and the second changes nothing."
    ),
)
async def approve_refund(refund_id: UUID, caller: InstitutionCaller, db: Db) -> Refund:
    async def work(session: AsyncSession) -> Refund:
        refund = await repository.visible_refund(session, caller, refund_id)
        return await service.approve_refund(
            session, refund.institution_id, refund_id, decided_by="institution"
        )

    return await db.run(work)


@router.post(
    "/v1/refunds/{refund_id}/reject",
    response_model=RefundOut,
    summary="Reject a refund (institution)",
    description="`409 refund_not_requested` once answered (approved, rejected or auto-approved).",
)
async def reject_refund(
    refund_id: UUID, body: RefundRejection, caller: InstitutionCaller, db: Db
) -> Refund:
    async def work(session: AsyncSession) -> Refund:
        refund = await repository.visible_refund(session, caller, refund_id)
        return await service.reject_refund(session, refund.institution_id, refund_id, body.reason)

    return await db.run(work)
