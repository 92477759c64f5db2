"""Working days as China's official calendar has them: weekends and public holidays off, make-up
working days (调休) on. The calendar data comes from `chinesecalendar`, which covers the years the
State Council has published; a date outside them is refused rather than guessed."""

from datetime import date, datetime, timedelta

import chinese_calendar

from app.kit.clock import SHANGHAI
from app.kit.errors import Unprocessable


class CalendarNotPublished(Unprocessable):
    """The official calendar for that year is not known yet: a deadline that needs it cannot be
    counted, so the request is refused (422) rather than a deadline guessed. The operator updates
    the `chinesecalendar` package when the State Council publishes the year."""

    code = "calendar_not_published"
    title = "No official working-day calendar for that date"


def is_workday(day: date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError as error:
        raise CalendarNotPublished(
            f"no official working-day calendar for {day.year} yet: the deadline cannot be "
            "counted; ask the operator to update the calendar"
        ) from error


def add_workdays(start: date, workdays: int) -> date:
    """The day on which `workdays` full working days after `start` have passed: counting starts the
    day after `start`, so a lesson recorded on a Friday before a normal weekend with 1 working day
    to answer is due on Monday."""
    day, remaining = start, workdays
    while remaining > 0:
        day += timedelta(days=1)
        if is_workday(day):
            remaining -= 1
    return day


def local_date(moment: datetime) -> date:
    """The calendar date in Asia/Shanghai, where every rule about days is counted."""
    return moment.astimezone(SHANGHAI).date()
