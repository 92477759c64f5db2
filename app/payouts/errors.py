from app.kit.errors import Conflict, NotFound


class PayoutNotFound(NotFound):
    code = "payout_not_found"


class PayoutRefused(Conflict):
    """A payout the rule or the institution's standing does not allow. Every refusal carries the
    figures of the balance view, so the institution sees why."""


class PayoutsSuspended(PayoutRefused):
    code = "payouts_suspended"
    title = "Payouts suspended"


class NothingReleasable(PayoutRefused):
    code = "nothing_releasable"
    title = "Nothing may be paid out now"


class MonthlyCapReached(PayoutRefused):
    code = "monthly_cap_reached"
    title = "This month's payout cap is reached"


class AmountExceedsReleasable(PayoutRefused):
    code = "amount_exceeds_releasable"
    title = "Amount exceeds what is releasable"


class MinBalanceViolation(PayoutRefused):
    code = "min_balance_violation"
    title = "Minimum balance would be violated"
