from app.kit.errors import Conflict, DomainError, NotFound, Unprocessable


class LessonNotFound(NotFound):
    code = "lesson_not_found"
    title = "Lesson not found"


class EnrollmentNotActive(Conflict):
    code = "enrollment_not_active"
    title = "Enrollment is not active"


class LessonsExhausted(Conflict):
    code = "lessons_exhausted"
    title = "No lessons left"


class LessonKeyReused(Conflict):
    code = "lesson_key_reused"
    title = "Lesson key already used for another lesson"


class OccurredInFuture(Unprocessable):
    code = "occurred_in_future"
    title = "Lesson in the future"


class LessonNotPending(Conflict):
    code = "lesson_not_pending"
    title = "Lesson is not awaiting confirmation"


class ConfirmationWindowClosed(Conflict):
    code = "confirmation_window_closed"
    title = "The time to dispute has passed"


class LessonNotDisputed(Conflict):
    code = "lesson_not_disputed"
    title = "Lesson is not disputed"


class ResolutionForbidden(DomainError):
    status = 403
    code = "resolution_forbidden"
    title = "Resolution not allowed to the caller"


class LessonTooOld(Unprocessable):
    code = "lesson_too_old"
    title = "Lesson recorded too long after it was given"


class LessonBeforePayment(Unprocessable):
    code = "lesson_before_payment"
    title = "Lesson before the payment"


class LessonOutsideValidity(Unprocessable):
    code = "lesson_outside_validity"
    title = "Lesson outside the days the payment covers"
