"""A jurisdiction's rule profile: every parameter of DOMAIN.md by its name, with its default.

Percentages are whole numbers from 0 to 100. Amounts are fen. Unknown names are refused, so a typo
never silently leaves a default in force.
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.kit.ttl_cache import TtlCache

NonNegative = Annotated[int, Field(strict=True, ge=0)]
Percent = Annotated[int, Field(strict=True, ge=0, le=100)]
Positive = Annotated[int, Field(strict=True, ge=1)]


class RuleProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Prepay cap (rule 1): on what a student still has unconsumed with the course plus the payment.
    max_prepaid_months: Positive = 3
    max_prepaid_lessons: Positive = 60
    max_prepaid_amount_fen: Positive = 500_000
    # Renewal window (rule 2).
    renewal_min_remaining_lessons: NonNegative = 20
    # Release per lesson (rule 6).
    parent_auto_confirm_workdays: NonNegative = 15
    max_lesson_backdate_days: NonNegative = 7
    release_lag_days: NonNegative = 1
    # Refunds (rule 7).
    institution_refund_response_workdays: NonNegative = 5
    # Minimum balance (rule 8): R = U + H + F.
    holdback_pct: Percent = 0
    holdback_months: NonNegative = 3
    min_balance_floor_fen: NonNegative = 0
    min_balance_pct_of_unconsumed: Percent = 0
    monthly_payout_cap_floor_multiple: NonNegative | None = None
    # Alerts.
    large_outflow_fen: Positive = 5_000_000
    daily_outflow_pct: Percent = 30
    consumption_spike_factor: Positive = 3
    topup_deadline_workdays: NonNegative = 5
    # Complaints: this many open complaints about one institution filed within this many days
    # raise a YELLOW alert (complaint_burst), closed when fewer remain.
    complaint_burst_count: Positive = 5
    complaint_burst_days: Positive = 7
    # Our own: an enrollment not paid within this time is cancelled.
    unpaid_enrollment_expiry_minutes: Positive = 24 * 60


profiles: TtlCache[str, RuleProfile] = TtlCache(ttl=10.0)
"""This process's memory of rule profiles by jurisdiction code (`create_app` sets its ttl), read
through `app.balances.service.profiles_of`; a profile replaced here is forgotten at once
(`app.jurisdictions.service.replace_profile`)."""
