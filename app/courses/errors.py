from app.kit.errors import NotFound


class CourseNotFound(NotFound):
    code = "course_not_found"
    title = "Course not found"
