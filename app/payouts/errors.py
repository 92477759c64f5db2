from app.kit.errors import Conflict


class PayoutsSuspended(Conflict):
    code = "payouts_suspended"
    title = "Payouts suspended"


class NothingReleasable(Conflict):
    code = "nothing_releasable"
    title = "Nothing releasable"


class AmountExceedsReleasable(Conflict):
    code = "amount_exceeds_releasable"
    title = "Amount exceeds what is releasable"


class MinBalanceViolation(Conflict):
    code = "min_balance_violation"
    title = "Minimum balance would be violated"


class MonthlyPayoutCapExceeded(Conflict):
    code = "monthly_payout_cap_exceeded"
    title = "Monthly payout cap exceeded"
