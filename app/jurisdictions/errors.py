from app.kit.errors import Conflict, NotFound, Unprocessable


class JurisdictionNotFound(NotFound):
    code = "jurisdiction_not_found"
    title = "Jurisdiction not found"


class JurisdictionExists(Conflict):
    code = "jurisdiction_exists"
    title = "Jurisdiction exists"


class UnknownJurisdiction(Unprocessable):
    """A request names a jurisdiction that does not exist as the scope of something new."""

    code = "unknown_jurisdiction"
    title = "Unknown jurisdiction"
