"""When a lesson may be recorded, and how long its parent has to answer (rule 6 of DOMAIN.md), as
pure functions of the moments involved. A lesson recorded late must not shorten the parent's time
(突击消课: many old lessons recorded at once, auto-confirmed before anyone looks), so the time runs
from the later of the lesson and its recording, and a lesson recorded long after it was given is
refused outright."""

from datetime import date, datetime, timedelta

from app.jurisdictions.profile import RuleProfile
from app.kit.clock import as_utc
from app.kit.workdays import add_workdays, local_date
from app.lessons.errors import (
    LessonBeforePayment,
    LessonOutsideValidity,
    LessonTooOld,
    OccurredInFuture,
)
from app.lessons.types import LockedEnrollment

# Clocks disagree a little: a lesson "a minute from now" was given now, and one a minute before the
# bank's time of the payment was given after it.
CLOCK_SKEW = timedelta(minutes=5)


def confirm_due_on(occurred_at: datetime, recorded_at: datetime, workdays: int) -> date:
    """The last day the parent may answer: `workdays` working days after the later of the lesson's
    day and the day it was recorded (Asia/Shanghai)."""
    return Deadlines(recorded_at, workdays).due_on(occurred_at)


class Deadlines:
    """`confirm_due_on` for the lessons of one batch, all recorded at one moment. The working days
    are counted once per lesson day rather than once per lesson: a batch's thousand lessons fall on
    a few days, and counting a fortnight of working days is most of the rules' cost per lesson."""

    def __init__(self, recorded_at: datetime, workdays: int) -> None:
        self._recorded_on = local_date(recorded_at)
        self._workdays = workdays
        self._due: dict[date, date] = {}

    def due_on(self, occurred_at: datetime) -> date:
        start = max(local_date(occurred_at), self._recorded_on)
        due = self._due.get(start)
        if due is None:
            due = self._due[start] = add_workdays(start, self._workdays)
        return due


def check_lesson_time(
    profile: RuleProfile, enrollment: LockedEnrollment, occurred_at: datetime, now: datetime
) -> None:
    """A lesson is given after its enrollment was paid, on a day the payment covers, not in the
    future, and recorded at most `max_lesson_backdate_days` days (of the local calendar) after the
    day it was given."""
    if occurred_at > now + CLOCK_SKEW:
        raise OccurredInFuture(
            f"occurred_at {occurred_at.isoformat()} is in the future", now=now.isoformat()
        )
    # Whole days of the local calendar, as the parent's working days are: 0 allows today only.
    day = local_date(occurred_at)
    earliest = local_date(now) - timedelta(days=profile.max_lesson_backdate_days)
    if day < earliest:
        raise LessonTooOld(
            f"the lesson's day {day} is more than {profile.max_lesson_backdate_days} days "
            f"before today; the earliest allowed is {earliest}",
            max_lesson_backdate_days=profile.max_lesson_backdate_days,
            earliest_allowed=earliest.isoformat(),
        )
    # The payment's time is the bank's clock: it too may disagree with ours a little.
    if enrollment.paid_at is not None and occurred_at < as_utc(enrollment.paid_at) - CLOCK_SKEW:
        raise LessonBeforePayment(
            f"occurred_at {occurred_at.isoformat()} is before the enrollment was paid",
            paid_at=as_utc(enrollment.paid_at).isoformat(),
        )
    if not enrollment.valid_from <= day <= enrollment.valid_until:
        raise LessonOutsideValidity(
            f"the lesson's day {day} is outside the days the payment covers "
            f"({enrollment.valid_from} to {enrollment.valid_until})",
            valid_from=enrollment.valid_from.isoformat(),
            valid_until=enrollment.valid_until.isoformat(),
        )
