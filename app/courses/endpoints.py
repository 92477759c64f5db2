from uuid import UUID

from fastapi import APIRouter

from app.auth.dependencies import CurrentPrincipal, InstitutionCaller, InstitutionViewer
from app.courses import repository, service
from app.courses.schemas import CourseCreate, CourseOut
from app.db.unit import Db
from app.kit.pagination import Page, PageParams
from app.models import Course

router = APIRouter(prefix="/v1/courses", tags=["courses"])


@router.post(
    "",
    status_code=201,
    response_model=CourseOut,
    summary="Publish a course",
    description=(
        "A course of the calling institution at one price per lesson, so a bigger package can "
        "never be cheaper per lesson. `ends_on` is on or after `starts_on`. A course may run "
        "longer than `max_prepaid_months`: that cap limits the span one enrollment's payment "
        "covers (`valid_from` to `valid_until`, within the course), not the course."
    ),
)
async def create_course(body: CourseCreate, caller: InstitutionCaller, db: Db) -> Course:
    institution_id = caller.institution_id
    return await db.run(lambda session: service.create_course(session, institution_id, body))


@router.get(
    "",
    response_model=Page[CourseOut],
    summary="Courses",
    description=(
        "Oldest first, `limit` per page; pass `next_cursor` back as `cursor` for more. An "
        "institution sees its own courses, a regulator its jurisdiction's, the operator all; "
        "`institution_id` narrows the list to one institution."
    ),
)
async def list_courses(
    caller: InstitutionViewer, db: Db, page: PageParams, institution_id: UUID | None = None
) -> Page[CourseOut]:
    rows, next_cursor = await db.run(
        lambda session: repository.page(session, caller, institution_id, page)
    )
    return Page(items=[CourseOut.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/{course_id}",
    response_model=CourseOut,
    summary="A course",
    description="The course, to its institution (and the operator and its regulator); else 404.",
)
async def get_course(course_id: UUID, caller: CurrentPrincipal, db: Db) -> Course:
    return await db.run(lambda session: repository.visible_course(session, caller, course_id))
