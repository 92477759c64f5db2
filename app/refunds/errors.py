from app.kit.errors import Conflict, NotFound


class RefundNotFound(NotFound):
    code = "refund_not_found"


class NothingRefundable(Conflict):
    code = "nothing_refundable"
    title = "Nothing refundable"


class RefundInProgress(Conflict):
    code = "refund_in_progress"
    title = "A refund is already in progress"


class RefundNotRequested(Conflict):
    code = "refund_not_requested"
    title = "Refund is not awaiting an answer"
