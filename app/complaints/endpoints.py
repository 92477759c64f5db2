from uuid import UUID

from fastapi import APIRouter

from app.auth.dependencies import AdminOrRegulator, CurrentPrincipal, Parent
from app.complaints import service
from app.complaints.schemas import ComplaintCreate, ComplaintOut, ComplaintResolution
from app.db.unit import Db
from app.kit.clock import utcnow
from app.kit.pagination import Page, PageParams
from app.models import Complaint
from app.models.complaint import ComplaintStatus

router = APIRouter(tags=["complaints"])


@router.post(
    "/v1/complaints",
    status_code=201,
    response_model=ComplaintOut,
    summary="File a complaint (parent, 投诉举报)",
    description=(
        "About the enrollment the parent's key is for (404 for any other). With `lesson_id` (a "
        "lesson of that enrollment, else 404 `lesson_not_found`) the lesson is disputed too, in "
        "the same transaction, while it is pending and within its time to answer; a lesson "
        "already confirmed or resolved stays as it is (`lesson_disputed: false`) and the "
        "complaint stands. `text`: 1 to 2,000 characters once trimmed, line breaks allowed. "
        "Many open complaints about one institution within a few days (the profile's "
        "`complaint_burst_count` and `complaint_burst_days`) raise a YELLOW alert."
    ),
)
async def file_complaint(body: ComplaintCreate, caller: Parent, db: Db) -> Complaint:
    return await db.run(lambda session: service.file_complaint(session, caller, body, utcnow()))


@router.get(
    "/v1/complaints/{complaint_id}",
    response_model=ComplaintOut,
    summary="A complaint and its outcome",
    description="To the parent who filed it and whoever sees its institution; 404 to anyone else.",
)
async def get_complaint(complaint_id: UUID, caller: CurrentPrincipal, db: Db) -> Complaint:
    return await db.run(lambda session: service.visible_complaint(session, caller, complaint_id))


@router.get(
    "/v1/regulator/complaints",
    response_model=Page[ComplaintOut],
    summary="Complaints (regulator)",
    description=(
        "The complaints about the jurisdiction's institutions (the operator: all), oldest first; "
        "`status` (`open`, `resolved`) and `institution_id` narrow the list."
    ),
)
async def list_complaints(
    caller: AdminOrRegulator,
    db: Db,
    page: PageParams,
    status: ComplaintStatus | None = None,
    institution_id: UUID | None = None,
) -> Page[ComplaintOut]:
    rows, next_cursor = await db.run(
        lambda session: service.page(session, caller, institution_id, status, page)
    )
    return Page(items=[ComplaintOut.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.post(
    "/v1/regulator/complaints/{complaint_id}/resolve",
    response_model=ComplaintOut,
    summary="Resolve a complaint (regulator)",
    description=(
        "`outcome` `upheld` or `rejected`, with a `note`. Once only: `409 complaint_resolved` "
        "after. A lesson the complaint disputed is resolved on its own, by "
        "`POST /v1/lessons/{id}/resolve`. The regulator of the institution's jurisdiction or the "
        "operator; 404 to anyone else."
    ),
)
async def resolve_complaint(
    complaint_id: UUID, body: ComplaintResolution, caller: AdminOrRegulator, db: Db
) -> Complaint:
    return await db.run(
        lambda session: service.resolve_complaint(session, caller, complaint_id, body, utcnow())
    )
