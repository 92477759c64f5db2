"""Whether an institution's standing stops something it asks for (DOMAIN.md, alert levels)."""

from app.models import Institution
from app.models.institution import AlertLevel, InstitutionStatus, ListStatus

# New enrollments stop at RED and FROZEN; payouts already at YELLOW.
ENROLLMENT_STOPPING_LEVELS = frozenset({AlertLevel.red, AlertLevel.frozen})
PAYOUT_STOPPING_LEVELS = frozenset({AlertLevel.yellow, AlertLevel.red, AlertLevel.frozen})


def stopped_because(institution: Institution, stopping_levels: frozenset[AlertLevel]) -> str | None:
    """Why the institution may not go on (frozen or revoked, blacklisted, or at one of the alert
    levels that stop this), or None when it may."""
    if institution.status != InstitutionStatus.active:
        return f"the institution is {institution.status}"
    if institution.list_status == ListStatus.black:
        return "the institution is blacklisted"
    if institution.alert_level in stopping_levels:
        return f"the institution's alert level is {institution.alert_level}"
    return None
