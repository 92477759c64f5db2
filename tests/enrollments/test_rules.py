"""Properties of the prepay cap and the renewal window (app/enrollments/rules.py), which decide on
figures alone: what the student still has unconsumed with the course, and the new purchase."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.enrollments.errors import PrepayCapExceeded, RenewalTooEarly
from app.enrollments.rules import PaidSpan, check_prepay_cap, check_renewal_window
from app.jurisdictions.profile import RuleProfile
from app.models import Enrollment

# A paid span well inside the months cap, so that the lessons and amount caps are what is decided.
SHORT_SPAN = PaidSpan(valid_from=date(2026, 3, 2), valid_until=date(2026, 4, 30))


@st.composite
def open_enrollment(draw) -> Enrollment:
    lessons = draw(st.integers(1, 80))
    price = draw(st.integers(0, 20_000))
    confirmed = draw(st.integers(0, lessons))
    amount = lessons * price
    refunded = draw(st.integers(0, amount - confirmed * price))
    return Enrollment(
        status=draw(st.sampled_from(["awaiting_payment", "active"])),
        lessons=lessons,
        lessons_confirmed=confirmed,
        amount_fen=amount,
        confirmed_fen=confirmed * price,
        refunded_fen=refunded,
    )


PROFILES = st.builds(
    RuleProfile,
    max_prepaid_lessons=st.integers(1, 120),
    max_prepaid_amount_fen=st.integers(1, 1_000_000),
    renewal_min_remaining_lessons=st.integers(0, 40),
)


@given(
    PROFILES,
    st.lists(open_enrollment(), max_size=3),
    st.integers(1, 120),
    st.integers(0, 2_000_000),
)
def test_prepay_cap_refuses_exactly_what_goes_over_a_limit(profile, held, lessons, amount):
    outstanding_lessons = sum(e.lessons - e.lessons_confirmed for e in held)
    outstanding_fen = sum(e.amount_fen - e.confirmed_fen - e.refunded_fen for e in held)
    over = {
        cap
        for cap, total, limit in (
            ("max_prepaid_lessons", outstanding_lessons + lessons, profile.max_prepaid_lessons),
            ("max_prepaid_amount_fen", outstanding_fen + amount, profile.max_prepaid_amount_fen),
        )
        if total > limit
    }
    try:
        check_prepay_cap(profile, held, SHORT_SPAN, lessons, amount)
    except PrepayCapExceeded as refused:
        violations = refused.extra["violations"]
        assert {v["cap"] for v in violations} == over != set()
        for violation in violations:  # each with its figures
            assert violation["total"] == violation["outstanding"] + violation["requested"]
            assert violation["total"] > violation["limit"]
        return
    assert over == set()


@given(st.integers(1, 120), st.integers(1, 1_000_000))
def test_prepay_cap_at_the_limit_and_one_over(max_lessons, max_fen):
    profile = RuleProfile(max_prepaid_lessons=max_lessons, max_prepaid_amount_fen=max_fen)
    check_prepay_cap(profile, [], SHORT_SPAN, max_lessons, max_fen)
    for lessons, amount in ((max_lessons + 1, max_fen), (max_lessons, max_fen + 1)):
        with pytest.raises(PrepayCapExceeded):
            check_prepay_cap(profile, [], SHORT_SPAN, lessons, amount)


@given(PROFILES, st.lists(open_enrollment(), max_size=3))
def test_renewal_opens_when_few_enough_lessons_remain(profile, held):
    too_early = [
        e
        for e in held
        if e.status == "active"
        and e.lessons - e.lessons_confirmed > profile.renewal_min_remaining_lessons
    ]
    try:
        check_renewal_window(profile, held)
    except RenewalTooEarly as refused:
        assert too_early
        assert refused.extra["remaining_lessons"] > profile.renewal_min_remaining_lessons
        return
    assert not too_early
