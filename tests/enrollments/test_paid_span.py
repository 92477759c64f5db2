"""The span one payment covers (rule 1), as a pure rule: whatever the course and the day, the
default span lies within the course, starts no earlier than today, and fits the months cap, so the
cap never refuses it; an asked span one day longer than the cap is refused."""

from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import assume, given
from hypothesis import strategies as st

from app.enrollments.errors import PrepayCapExceeded
from app.enrollments.rules import check_prepay_cap, paid_span
from app.jurisdictions.profile import RuleProfile

days = st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31))


@given(
    starts_on=days,
    length=st.integers(min_value=0, max_value=800),
    today=days,
    months=st.integers(min_value=1, max_value=24),
)
def test_the_default_span_fits_the_course_and_the_cap(starts_on, length, today, months):
    ends_on = starts_on + timedelta(days=length)
    assume(today <= ends_on)  # an ended course is refused before (course_ended)
    profile = RuleProfile(max_prepaid_months=months)
    course = SimpleNamespace(starts_on=starts_on, ends_on=ends_on)

    span = paid_span(profile, course, today, None, None)

    assert span.valid_from == max(today, starts_on)
    assert span.valid_from <= span.valid_until <= ends_on
    assert span.valid_until <= span.valid_from + relativedelta(months=months)
    # The whole course when it fits, else exactly the cap.
    assert span.valid_until in {ends_on, span.valid_from + relativedelta(months=months)}
    check_prepay_cap(profile, [], span, 1, 1)  # never a months violation


@given(valid_from=days, months=st.integers(min_value=1, max_value=24))
def test_an_asked_span_one_day_over_the_cap_is_refused(valid_from, months):
    profile = RuleProfile(max_prepaid_months=months)
    longest = valid_from + relativedelta(months=months)
    course = SimpleNamespace(starts_on=valid_from, ends_on=longest + timedelta(days=1))

    check_prepay_cap(profile, [], paid_span(profile, course, valid_from, None, longest), 1, 1)
    with pytest.raises(PrepayCapExceeded) as refused:
        over = paid_span(profile, course, valid_from, None, longest + timedelta(days=1))
        check_prepay_cap(profile, [], over, 1, 1)
    [violation] = refused.value.extra["violations"]
    assert (violation["cap"], violation["latest_allowed_end"]) == ("max_prepaid_months", longest)
