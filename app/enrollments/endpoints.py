from uuid import UUID

from fastapi import APIRouter, Request

from app.auth.dependencies import CurrentPrincipal, InstitutionCaller
from app.db.unit import Db
from app.enrollments import repository, service
from app.enrollments.schemas import (
    EnrollmentCreate,
    EnrollmentCreated,
    EnrollmentOut,
    EnrollmentPage,
)
from app.kit.clock import utcnow
from app.kit.pagination import PageParams
from app.models.enrollment import EnrollmentStatus

router = APIRouter(prefix="/v1/enrollments", tags=["enrollments"])


@router.post(
    "",
    status_code=201,
    response_model=EnrollmentCreated,
    summary="Enroll a student",
    description=(
        "Creates an order awaiting payment: `amount_fen` = the course's lesson price times "
        "`lessons`, payable into the institution's escrow account quoting `order_no` before "
        "`expires_at`. Returns the parent's API key once. The payment covers `valid_from` to "
        "`valid_until` (by default from the later of today and the course's start, to the "
        "course's end or `max_prepaid_months` later if that comes first: a longer course is sold "
        "in instalments, each a renewal). Refusals: `422 prepay_cap_exceeded` "
        "(the student's unconsumed lessons and money in this course plus the new ones above "
        "`max_prepaid_lessons` or `max_prepaid_amount_fen`, or a `valid_until` more than "
        "`max_prepaid_months` after `valid_from`; `violations` lists each limit with its "
        "figures), `422 invalid_validity` (the span outside the course, or starting before "
        "today), "
        "`422 renewal_too_early` (an active enrollment of the student in the course has more "
        "than `renewal_min_remaining_lessons` lessons left), `422 loan_funded_payment`, "
        "`422 invalid_id_number`, `422 course_ended`, `404 course_not_found`, and "
        "`409 institution_frozen` (frozen, revoked, blacklisted, or alert level RED or FROZEN)."
    ),
)
async def create_enrollment(
    body: EnrollmentCreate, caller: InstitutionCaller, db: Db, request: Request
) -> EnrollmentCreated:
    institution_id = caller.institution_id
    secret = request.app.state.settings.secret_key.get_secret_value()
    enrollment, parent_key = await db.run(
        lambda session: service.create_enrollment(session, secret, institution_id, body, utcnow())
    )
    return EnrollmentCreated(**EnrollmentOut.of(enrollment).model_dump(), parent_key=parent_key)


@router.get(
    "",
    response_model=EnrollmentPage,
    summary="The institution's enrollments",
    description="Oldest first, `limit` per page; pass `next_cursor` back as `cursor` for more.",
)
async def list_enrollments(
    caller: InstitutionCaller,
    db: Db,
    page: PageParams,
    status: EnrollmentStatus | None = None,
) -> EnrollmentPage:
    institution_id = caller.institution_id
    rows, next_cursor = await db.run(
        lambda session: repository.page(session, institution_id, status, page)
    )
    return EnrollmentPage(items=[EnrollmentOut.of(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/{enrollment_id}",
    response_model=EnrollmentOut,
    summary="An enrollment and its balance",
    description=(
        "To its institution and its parent (and the operator and the institution's regulator); "
        "anyone else gets 404. The identity number shows masked only."
    ),
)
async def get_enrollment(enrollment_id: UUID, caller: CurrentPrincipal, db: Db) -> EnrollmentOut:
    enrollment = await db.read(
        lambda session: repository.visible_enrollment(session, caller, enrollment_id)
    )
    return EnrollmentOut.of(enrollment)
