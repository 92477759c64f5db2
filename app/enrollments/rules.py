"""The enrollment rules of DOMAIN.md as pure functions of the figures: the span a payment covers and
the prepay cap (rule 1), and the renewal window (rule 2). The service locks the rows the figures
come from."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from dateutil.relativedelta import relativedelta

from app.enrollments.errors import InvalidValidity, PrepayCapExceeded, RenewalTooEarly
from app.jurisdictions.profile import RuleProfile
from app.models import Course, Enrollment
from app.models.enrollment import EnrollmentStatus

# What a student "still has" with a course: bought and not yet cancelled, completed or refunded.
OPEN_STATUSES = (EnrollmentStatus.awaiting_payment, EnrollmentStatus.active)


@dataclass(frozen=True, slots=True)
class PaidSpan:
    """The days one payment covers, both included."""

    valid_from: date
    valid_until: date


def paid_span(
    profile: RuleProfile,
    course: Course,
    today: date,
    valid_from: date | None,
    valid_until: date | None,
) -> PaidSpan:
    """The span the institution asks for, or by default: from the later of today and the course's
    start, to the course's end or `max_prepaid_months` later, whichever comes first (so a long
    course is sold in instalments, each a renewal). The span lies within the course and starts no
    earlier than today: a payment covers no day before it is made. Whether an asked span is too
    long is the prepay cap's to say (`check_prepay_cap`)."""
    start = valid_from or max(today, course.starts_on)
    end = valid_until or min(
        course.ends_on, start + relativedelta(months=profile.max_prepaid_months)
    )
    if start < today or start < course.starts_on or end > course.ends_on or end < start:
        raise InvalidValidity(
            f"valid_from {start} to valid_until {end} must lie within the course "
            f"({course.starts_on} to {course.ends_on}), start no earlier than today ({today}) "
            "and end no earlier than it starts",
            valid_from=start,
            valid_until=end,
            course_starts_on=course.starts_on,
            course_ends_on=course.ends_on,
            today=today,
        )
    return PaidSpan(start, end)


def check_prepay_cap(
    profile: RuleProfile,
    open_enrollments: Sequence[Enrollment],
    span: PaidSpan,
    lessons: int,
    amount_fen: int,
) -> None:
    """One payment may cover at most `max_prepaid_lessons` lessons and `max_prepaid_amount_fen` fen,
    counting what the student still has unconsumed with the same institution and course
    (`open_enrollments`) plus the new purchase, and a span of at most `max_prepaid_months` calendar
    months (the time the payment covers, not the course's length). Unconsumed means not released:
    lessons not confirmed, money neither confirmed nor refunded. Raises with every limit broken and
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
    latest_end = span.valid_from + relativedelta(months=profile.max_prepaid_months)
    if span.valid_until > latest_end:
        violations.append(
            {
                "cap": "max_prepaid_months",
                "limit": profile.max_prepaid_months,
                "covers_from": span.valid_from,
                "covers_until": span.valid_until,
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


def refundable_fen(enrollment: Enrollment) -> int:
    """What a refund would return (DOMAIN.md rule 7): paid, less lessons confirmed, pending or
    disputed, less what was refunded already."""
    held = enrollment.confirmed_fen + enrollment.pending_fen + enrollment.disputed_fen
    return max(0, enrollment.paid_fen - held - enrollment.refunded_fen)
