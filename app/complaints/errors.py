from app.kit.errors import Conflict, NotFound


class ComplaintNotFound(NotFound):
    code = "complaint_not_found"


class ComplaintResolved(Conflict):
    code = "complaint_resolved"
    title = "The complaint is resolved already"
