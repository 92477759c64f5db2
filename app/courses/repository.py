"""The course queries that take pages."""

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.auth.scope import scoped, scoped_page
from app.courses.errors import CourseNotFound
from app.kit.pagination import PageRequest
from app.models import Course


async def page(
    session: AsyncSession, caller: Principal, institution_id: UUID | None, page_request: PageRequest
) -> tuple[Sequence[Course], str | None]:
    """One page of the courses the caller sees, optionally of one institution, oldest first."""
    return await scoped_page(session, caller, Course, page_request, institution_id=institution_id)


async def visible_course(session: AsyncSession, caller: Principal, course_id: UUID) -> Course:
    """The course, to whoever sees its institution; 404 to anyone else, as if there were none."""
    course = await scoped(session, caller, Course, course_id)
    if course is None:
        raise CourseNotFound(f"no course {course_id}")
    return course
