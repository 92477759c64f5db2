"""The course queries that take pages."""

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.auth.scope import institution_scope, scoped
from app.courses.errors import CourseNotFound
from app.kit.pagination import PageRequest, paginate
from app.models import Course


async def page(
    session: AsyncSession, caller: Principal, institution_id: UUID | None, page_request: PageRequest
) -> tuple[Sequence[Course], str | None]:
    """One page of the courses the caller sees, optionally of one institution, oldest first."""
    query = select(Course).where(institution_scope(caller, Course.institution_id))
    if institution_id is not None:
        query = query.where(Course.institution_id == institution_id)
    return await paginate(session, query, page_request, Course.created_at, Course.id)


async def visible_course(session: AsyncSession, caller: Principal, course_id: UUID) -> Course:
    """The course, to whoever sees its institution; 404 to anyone else, as if there were none."""
    course = await scoped(session, caller, Course, course_id)
    if course is None:
        raise CourseNotFound(f"no course {course_id}")
    return course
