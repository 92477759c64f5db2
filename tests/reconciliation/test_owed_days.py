"""Which days a bank owes a statement for, and when each is due: examples on real 2026 days and
what must always hold."""

from datetime import UTC, date, datetime, time, timedelta

from hypothesis import given
from hypothesis import strategies as st

from app.kit.clock import SHANGHAI
from app.kit.workdays import is_workday, local_date
from app.reconciliation.watch import LOOKBACK, owed_days


def shanghai(day: date, hour: int = 0, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), SHANGHAI)


def test_a_day_is_owed_once_its_end_and_the_due_hours_have_passed():
    due = timedelta(hours=12)
    opened = date(2026, 10, 12)

    before = owed_days(
        opened, shanghai(date(2026, 10, 13), 11, 59), workdays_only=False, due_after=due
    )
    on_time = owed_days(
        opened, shanghai(date(2026, 10, 13), 12), workdays_only=False, due_after=due
    )

    assert before == []
    assert on_time == [date(2026, 10, 12)]


def test_working_days_skip_the_weekend_and_count_a_make_up_saturday():
    # 2026-10-10 is a Saturday worked instead of the National Day holiday (调休); 10-11 and the
    # weekend of 10-17 are days off.
    as_of = shanghai(date(2026, 10, 20), 6)
    due = timedelta(hours=12)

    workdays = owed_days(date(2026, 10, 9), as_of, workdays_only=True, due_after=due)
    daily = owed_days(date(2026, 10, 9), as_of, workdays_only=False, due_after=due)

    assert workdays == [date(2026, 10, 9), date(2026, 10, 10)] + [
        date(2026, 10, day) for day in range(12, 17)
    ]
    assert daily == [date(2026, 10, 9) + timedelta(days=n) for n in range(10)]


def test_nothing_is_owed_further_back_than_the_lookback():
    as_of = shanghai(date(2026, 11, 29), 13)

    owed = owed_days(date(2025, 1, 1), as_of, workdays_only=False, due_after=timedelta(0))

    assert owed[0] == date(2026, 11, 29) - LOOKBACK
    assert owed[-1] == date(2026, 11, 28)


moments = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


@given(
    opened=st.dates(min_value=date(2024, 12, 1), max_value=date(2027, 12, 31)),
    as_of=moments,
    workdays_only=st.booleans(),
    due_hours=st.integers(min_value=0, max_value=168),
)
def test_owed_days_are_exactly_the_days_due_in_the_window(opened, as_of, workdays_only, due_hours):
    due = timedelta(hours=due_hours)

    owed = owed_days(opened, as_of, workdays_only=workdays_only, due_after=due)

    start = max(opened, local_date(as_of) - LOOKBACK)
    window = [
        start + timedelta(days=n) for n in range(max(0, (local_date(as_of) - start).days + 1))
    ]

    def owes(day: date) -> bool:
        due_at = shanghai(day + timedelta(days=1)) + due
        return due_at <= as_of and (not workdays_only or is_workday(day))

    assert owed == [day for day in window if owes(day)]
    assert owed == sorted(set(owed))
    # A day not yet ended is never owed, whatever the due hours.
    assert all(day < local_date(as_of) for day in owed)
