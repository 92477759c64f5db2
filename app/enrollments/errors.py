from app.kit.errors import Conflict, NotFound, Unprocessable


class EnrollmentNotFound(NotFound):
    code = "enrollment_not_found"
    title = "Enrollment not found"


class PrepayCapExceeded(Unprocessable):
    code = "prepay_cap_exceeded"
    title = "Prepay cap exceeded"


class InvalidValidity(Unprocessable):
    code = "invalid_validity"
    title = "Validity outside the course"


class RenewalTooEarly(Unprocessable):
    code = "renewal_too_early"
    title = "Renewal too early"


class LoanFundedPayment(Unprocessable):
    code = "loan_funded_payment"
    title = "Loan-funded payment refused"


class InvalidIdNumber(Unprocessable):
    code = "invalid_id_number"
    title = "Invalid identity number"


class CourseEnded(Unprocessable):
    code = "course_ended"
    title = "Course has ended"


class InstitutionFrozen(Conflict):
    code = "institution_frozen"
    title = "Institution may not enroll"
