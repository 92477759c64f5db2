from app.kit.errors import Conflict, NotFound, Unprocessable


class InstitutionNotFound(NotFound):
    code = "institution_not_found"
    title = "Institution not found"


class InstitutionExists(Conflict):
    code = "institution_exists"
    title = "Institution exists"


class InvalidUscc(Unprocessable):
    code = "invalid_uscc"
    title = "Invalid unified social credit code"


class UnknownInstitution(Unprocessable):
    """A request names an institution that does not exist as the scope of something new."""

    code = "unknown_institution"
    title = "Unknown institution"
