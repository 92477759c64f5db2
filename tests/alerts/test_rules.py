"""The alert engine's pure rules, by example and as properties."""

from hypothesis import given
from hypothesis import strategies as st

from app.alerts.rules import (
    RANK,
    SPIKE_MIN_HISTORY_DAYS,
    SPIKE_WINDOW_DAYS,
    figure_trigger,
    is_spike,
    outflow_share_exceeded,
    settled_level,
    worst,
)
from app.models.institution import AlertLevel

fen = st.integers(min_value=-(10**12), max_value=10**12)
levels = st.lists(st.sampled_from([AlertLevel.yellow, AlertLevel.red]))


def test_examples():
    assert worst([]) == AlertLevel.green
    assert worst(["YELLOW", "RED", "YELLOW"]) == AlertLevel.red
    assert settled_level(held=True, open_levels=[]) == AlertLevel.frozen
    assert figure_trigger(99, 100, 150) == "shortfall"
    assert figure_trigger(100, 100, 150) == "floor_breach"
    assert figure_trigger(150, 100, 150) is None
    assert outflow_share_exceeded(30_001, 100_000, 30)
    assert not outflow_share_exceeded(30_000, 100_000, 30)
    assert outflow_share_exceeded(1, 0, 30)  # anything out of an empty opening
    assert not outflow_share_exceeded(0, 0, 30)
    # A mean of 9 / 10 a day; 3 times it is 2.7: 3 lessons are a spike, 2 are not.
    assert is_spike(3, 9, 10, 3) and not is_spike(2, 9, 10, 3)
    assert not is_spike(1_000, 0, SPIKE_WINDOW_DAYS, 3)  # no lessons before: no baseline
    assert not is_spike(1_000, 5, SPIKE_MIN_HISTORY_DAYS - 1, 3)  # too new to have one


@given(levels, st.booleans())
def test_the_level_is_the_worst_open_or_frozen(open_levels, held):
    level = settled_level(held=held, open_levels=open_levels)
    if held:
        assert level == AlertLevel.frozen
    else:
        assert all(RANK[level] >= RANK[AlertLevel(each)] for each in open_levels)
        assert level in open_levels or (level == AlertLevel.green and not open_levels)


@given(fen, st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=10**12))
def test_the_figure_trigger_follows_b_u_r(balance, unconsumed, extra):
    required = unconsumed + extra  # R = U + H + F, H and F never negative
    trigger = figure_trigger(balance, unconsumed, required)
    assert (trigger == "shortfall") == (balance < unconsumed)
    assert (trigger == "floor_breach") == (unconsumed <= balance < required)
    assert (trigger is None) == (balance >= required)


@given(
    st.integers(min_value=0, max_value=10**12),
    fen,
    st.integers(min_value=0, max_value=100),
)
def test_the_outflow_share_is_exact(outflows, opening, pct):
    from fractions import Fraction

    exceeded = outflow_share_exceeded(outflows, opening, pct)
    limit = Fraction(pct, 100) * max(opening, 0)
    assert exceeded == (outflows > 0 and Fraction(outflows) > limit)


@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=SPIKE_WINDOW_DAYS),
    st.integers(min_value=1, max_value=20),
)
def test_the_spike_is_above_factor_times_the_mean(today, trailing, days, factor):
    from fractions import Fraction

    spike = is_spike(today, trailing, days, factor)
    if days < SPIKE_MIN_HISTORY_DAYS or trailing == 0:
        assert not spike
    else:
        assert spike == (today > factor * Fraction(trailing, days))
        # One lesson more never ends a spike.
        assert not spike or is_spike(today + 1, trailing, days, factor)
