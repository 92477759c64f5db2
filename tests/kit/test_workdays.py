"""Working days: the official calendar from chinesecalendar, years published since from
CALENDAR_FILE, and a refusal, never a guess, for a year known to neither."""

import json
from datetime import date, timedelta

import pytest

from app.config import Settings
from app.kit import workdays
from app.kit.clock import utcnow
from app.main import create_app
from tests.factories import make_world
from tests.lessons.helpers import paid_enrollment, record

UNPUBLISHED = 2099


def test_the_package_calendar_counts_holidays_and_make_up_days():
    assert not workdays.is_workday(date(2026, 10, 1))  # National Day
    assert not workdays.is_workday(date(2026, 10, 3))  # a Saturday in it
    assert workdays.is_workday(date(2026, 9, 28))  # a Monday
    # 2026's Spring Festival: off from Sunday 15 to Monday 23 February, Saturday the 28th worked.
    assert not workdays.is_workday(date(2026, 2, 16))
    assert workdays.is_workday(date(2026, 2, 28))


def test_a_year_known_to_nothing_is_refused_not_guessed():
    with pytest.raises(workdays.CalendarNotPublished) as refused:
        workdays.add_workdays(date(UNPUBLISHED, 3, 2), 15)
    assert refused.value.code == "calendar_not_published"
    assert str(UNPUBLISHED) in str(refused.value)


def test_a_calendar_file_adds_a_published_year(tmp_path, calendars):
    path = tmp_path / "calendar.json"
    notice = {"holidays": ["2099-01-01", "2099-01-02"], "workdays": ["2099-01-10"]}
    path.write_text(json.dumps({str(UNPUBLISHED): notice}))

    assert workdays.load_calendar_file(path) == [UNPUBLISHED]

    assert not workdays.is_workday(date(2099, 1, 1))  # a holiday on a Thursday
    assert workdays.is_workday(date(2099, 1, 10))  # a Saturday worked instead
    assert not workdays.is_workday(date(2099, 1, 11))  # an ordinary Sunday
    assert workdays.is_workday(date(2099, 1, 5))  # an ordinary Monday
    # From Thursday the 1st: Friday the 2nd is a holiday too, then a weekend.
    assert workdays.add_workdays(date(2099, 1, 1), 3) == date(2099, 1, 7)


def test_a_calendar_file_year_takes_precedence_over_the_package(calendars):
    workdays.publish(2026, holidays={date(2026, 9, 28)}, workdays=set())
    assert not workdays.is_workday(date(2026, 9, 28))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "cannot be read"),
        ("[]", "object keyed by year"),
        ('{"twenty": {}}', "twenty"),
        ('{"2099": {"holidays": ["2099-02-30"]}}', "2099"),
        ('{"2099": {"holidays": ["2098-12-31"]}}', "is not in 2099"),
        ('{"2099": {"holidays": ["2099-01-10"], "workdays": ["2099-01-10"]}}', "both"),
        ('{"2099": {"workdays": ["2099-01-05"]}}', "is a weekday"),
        ('{"2099": {"holiday": []}}', "only `holidays` and `workdays`"),
    ],
)
def test_a_bad_calendar_file_stops_the_service_starting(tmp_path, calendars, content, problem):
    path = tmp_path / "calendar.json"
    path.write_text(content)
    with pytest.raises(workdays.InvalidCalendarFile, match=problem):
        create_app(Settings(calendar_file=path))
    assert UNPUBLISHED not in workdays._published


def test_a_missing_calendar_file_stops_the_service_starting(tmp_path):
    with pytest.raises(workdays.InvalidCalendarFile, match="cannot be read"):
        create_app(Settings(calendar_file=tmp_path / "absent.json"))


async def test_a_lesson_whose_deadline_needs_an_unpublished_year_is_refused(client, engine):
    # About 250 working days a year: this deadline lies decades ahead, in no published year.
    world = await make_world(engine, parent_auto_confirm_workdays=250 * (UNPUBLISHED - 2026))
    enrollment = await paid_enrollment(engine, world, lessons=10, amount_fen=100_000)

    response = await record(
        client, world, enrollment, key="k-1", occurred_at=utcnow() - timedelta(hours=1)
    )

    assert response.status_code == 422
    assert response.json()["code"] == "calendar_not_published"
    assert response.headers["content-type"].startswith("application/problem+json")


def test_the_stand_in_covers_only_years_no_calendar_knows(calendars):
    assert workdays.stand_in_for_unknown_years(date(2025, 6, 1)) == []  # the package has both

    assert workdays.stand_in_for_unknown_years(date(UNPUBLISHED - 1, 12, 20)) == [
        UNPUBLISHED - 1,
        UNPUBLISHED,
    ]
    assert not workdays.is_workday(date(UNPUBLISHED, 1, 1))
    assert workdays.is_workday(date(UNPUBLISHED, 1, 2))  # a Friday: nothing else is off
    assert not workdays.is_workday(date(UNPUBLISHED, 1, 3))
