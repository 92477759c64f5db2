"""The enrollment rules of DOMAIN.md as pure functions of the figures: the prepay cap (rule 1) and
the renewal window (rule 2). The service locks the rows the figures come from."""

from collections.abc import Sequence
from datetime import date
from typing import Any

from dateutil.relativedelta import relativedelta

from app.enrollments.errors import PrepayCapExceeded, RenewalTooEarly
from app.jurisdictions.profile import RuleProfile
from app.models import Course, Enrollment
from app.models.enrollment import EnrollmentStatus

# What a student "still has" with a course: bought and not yet cancelled, completed or refunded.
OPEN_STATUSES = (EnrollmentStatus.awaiting_payment, EnrollmentStatus.active)


def check_prepay_cap(
    profile: RuleProfile,
    open_enrollments: Sequence[Enrollment],
    course: Course,
    lessons: int,
    amount_fen: int,
    today: date,
) -> None:
    """One payment may cover at most `max_prepaid_lessons` lessons, `max_prepaid_amount_fen` fen and
    `max_prepaid_months` calendar months, counting what the student still has unconsumed with the
    same institution and course (`open_enrollments`) plus the new purchase. Unconsumed means not
    released: lessons not confirmed, money neither confirmed nor refunded. The months run from the
    later of today and the course's start to the course's end. Raises with every limit broken and
    its figures."""
    outstanding_lessons = sum(e.lessons - e.lessons_confirmed for e in open_enrollments)
    outstanding_fen = sum(e.amount_fen - e.confirmed_fen - e.refunded_fen for e in open_enrollments)
    violations: list[dict[str, Any]] = []
    for cap, limit, outstanding, requested in (
        ("max_prepaid_lessons", profile.max_prepaid_lessons, outstanding_lessons, lessons),
        ("max_prepaid_amount_fen", profile.max_prepaid_amount_fen, outstanding_fen, amount_fen),
    ):
        if outstanding + requested > limit:
            violations.append(
                {
                    "cap": cap,
                    "limit": limit,
                    "outstanding": outstanding,
                    "requested": requested,
                    "total": outstanding + requested,
                }
            )
    covers_from = max(today, course.starts_on)
    latest_end = covers_from + relativedelta(months=profile.max_prepaid_months)
    if course.ends_on > latest_end:
        violations.append(
            {
                "cap": "max_prepaid_months",
                "limit": profile.max_prepaid_months,
                "covers_from": covers_from,
                "covers_until": course.ends_on,
                "latest_allowed_end": latest_end,
            }
        )
    if violations:
        raise PrepayCapExceeded("; ".join(_describe(v) for v in violations), violations=violations)


def _describe(violation: dict[str, Any]) -> str:
    if violation["cap"] == "max_prepaid_months":
        return (
            f"the payment would cover {violation['covers_from']} to {violation['covers_until']}, "
            f"more than {violation['limit']} months (at most until "
            f"{violation['latest_allowed_end']})"
        )
    return (
        f"{violation['outstanding']} unconsumed plus {violation['requested']} new is "
        f"{violation['total']}, above {violation['cap']} = {violation['limit']}"
    )


def check_renewal_window(profile: RuleProfile, open_enrollments: Sequence[Enrollment]) -> None:
    """A student may buy more of a course only once an active enrollment in it has at most
    `renewal_min_remaining_lessons` lessons left (not yet confirmed)."""
    for enrollment in open_enrollments:
        remaining = enrollment.lessons - enrollment.lessons_confirmed
        if (
            enrollment.status == EnrollmentStatus.active
            and remaining > profile.renewal_min_remaining_lessons
        ):
            raise RenewalTooEarly(
                f"enrollment {enrollment.order_no} of this student still has {remaining} lessons; "
                f"renewal opens at {profile.renewal_min_remaining_lessons}",
                enrollment_id=enrollment.id,
                remaining_lessons=remaining,
                renewal_min_remaining_lessons=profile.renewal_min_remaining_lessons,
            )
