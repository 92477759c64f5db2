"""Courses: what an institution sells, at one price per lesson."""

import uuid
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.courses.errors import CourseNotFound
from app.courses.schemas import CourseCreate
from app.kit.clock import utcnow
from app.models import Course


async def create_course(session: AsyncSession, institution_id: UUID, body: CourseCreate) -> Course:
    course = Course(
        institution_id=institution_id, id=uuid.uuid4(), created_at=utcnow(), **body.model_dump()
    )
    session.add(course)
    await session.flush()
    return course


async def locked_course(session: AsyncSession, institution_id: UUID, course_id: UUID) -> Course:
    """The institution's course, locked until the transaction ends: enrollments in one course take
    this lock first, so the prepay cap is checked against figures no one else is changing."""
    course = await session.scalar(
        select(Course)
        .where(Course.institution_id == institution_id, Course.id == course_id)
        .with_for_update()
    )
    if course is None:
        raise CourseNotFound(f"no course {course_id}")
    return course
