"""Working days as China's official calendar has them: weekends and public holidays off, make-up
working days (调休) on.

The calendar data comes from `chinesecalendar`, which covers the years the State Council had
published when it was released. A year the State Council has published since can be given to the
service before the package catches up: `CALENDAR_FILE` names a JSON file with the year's notice,

    {"2027": {"holidays": ["2027-01-01", ...], "workdays": ["2027-02-20", ...]}}

where `holidays` are the days off (the whole of each holiday) and `workdays` the weekend days
worked instead (调休). Any other day is a working day from Monday to Friday. A year in the file takes
precedence over the package. A date in a year known to neither is refused rather than guessed.
"""

import functools
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import chinese_calendar

from app.kit.clock import SHANGHAI
from app.kit.errors import Unprocessable


class CalendarNotPublished(Unprocessable):
    """The official calendar for that year is not known yet: a deadline that needs it cannot be
    counted, so the request is refused (422) rather than a deadline guessed. The operator adds
    the year to CALENDAR_FILE, or updates `chinesecalendar`, once the State Council publishes it."""

    code = "calendar_not_published"
    title = "No official working-day calendar for that date"


class InvalidCalendarFile(ValueError):
    """CALENDAR_FILE cannot be used: the service refuses to start rather than count wrong days."""


@dataclass(frozen=True, slots=True)
class PublishedYear:
    holidays: frozenset[date]
    workdays: frozenset[date]  # weekend days worked instead (调休)

    def is_workday(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day not in self.holidays and day.weekday() < 5


# Years published after the installed package: process-wide, as the package's own data is.
_published: dict[int, PublishedYear] = {}


def publish(year: int, holidays: set[date], workdays: set[date]) -> None:
    """Use the State Council's notice for `year` (it replaces an earlier one of the same year)."""
    outside = sorted(day for day in holidays | workdays if day.year != year)
    if outside:
        raise InvalidCalendarFile(f"{year}: {outside[0].isoformat()} is not in {year}")
    both = sorted(holidays & workdays)
    if both:
        raise InvalidCalendarFile(f"{year}: {both[0].isoformat()} is both a holiday and a workday")
    weekdays = sorted(day for day in workdays if day.weekday() < 5)
    if weekdays:
        raise InvalidCalendarFile(
            f"{year}: {weekdays[0].isoformat()} is a weekday; `workdays` lists only the weekend "
            "days worked instead of a holiday"
        )
    _published[year] = PublishedYear(frozenset(holidays), frozenset(workdays))


def load_calendar_file(path: Path | None) -> list[int]:
    """Read CALENDAR_FILE, when one is set, and use every year in it; the years, in order."""
    if path is None:
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InvalidCalendarFile(f"CALENDAR_FILE {str(path)!r} cannot be read: {error}") from None
    if not isinstance(raw, dict):
        raise InvalidCalendarFile("CALENDAR_FILE must hold an object keyed by year")
    years = []
    for key, notice in raw.items():
        try:
            year = int(key)
            if not isinstance(notice, dict) or set(notice) - {"holidays", "workdays"}:
                raise ValueError("each year holds only `holidays` and `workdays`")
            holidays = {date.fromisoformat(day) for day in notice.get("holidays", [])}
            workdays = {date.fromisoformat(day) for day in notice.get("workdays", [])}
        except (TypeError, ValueError) as error:
            raise InvalidCalendarFile(f"CALENDAR_FILE, year {key!r}: {error}") from None
        publish(year, holidays, workdays)
        years.append(year)
    return sorted(years)


def is_known(year: int) -> bool:
    """Whether `year`'s calendar is known, from CALENDAR_FILE or the package."""
    if year in _published:
        return True
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


def stand_in_for_unknown_years(today: date) -> list[int]:
    """For the demo and the tests only, never for real deadlines: count this year and the next,
    where no official calendar is known, with weekends and New Year's Day off and nothing else.
    Deadlines "from now" run a few weeks ahead, and would otherwise be refused near a year's end
    until the State Council publishes the next. Returns the years it stood in for."""
    years = [year for year in (today.year, today.year + 1) if not is_known(year)]
    for year in years:
        publish(year, holidays={date(year, 1, 1)}, workdays=set())
    return years


def is_workday(day: date) -> bool:
    published = _published.get(day.year)
    if published is not None:
        return published.is_workday(day)
    try:
        return _official_workday(day)
    except NotImplementedError as error:
        raise CalendarNotPublished(
            f"no official working-day calendar for {day.year} yet: the deadline cannot be "
            "counted; ask the operator to add the year to CALENDAR_FILE"
        ) from error


@functools.lru_cache(maxsize=4096)
def _official_workday(day: date) -> bool:
    """chinesecalendar's answer, which never changes within a process: remembered, since every
    lesson recorded counts its confirmation deadline day by day."""
    return bool(chinese_calendar.is_workday(day))


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
