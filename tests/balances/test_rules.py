"""Properties of the minimum-balance rule's arithmetic (app/balances/rules.py) and of the payout
decision made from it (app/payouts/service.py::checked_amount), next to a few examples."""

from fractions import Fraction
from math import ceil, floor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.balances.rules import (
    Figures,
    ceil_percent,
    coverage_ratio,
    floor_fen,
    holdback_fen,
)
from app.payouts.errors import (
    AmountExceedsReleasable,
    MinBalanceViolation,
    MonthlyCapReached,
    NothingReleasable,
)
from app.payouts.service import checked_amount

FEN = st.integers(min_value=0, max_value=10**15)
SIGNED_FEN = st.integers(min_value=-(10**15), max_value=10**15)
PERCENT = st.integers(min_value=0, max_value=100)


@given(PERCENT, FEN)
def test_ceil_percent_is_the_exact_ceiling(percent, amount):
    held = ceil_percent(percent, amount)
    assert held == ceil(Fraction(percent * amount, 100))
    assert (held - 1) * 100 < percent * amount <= held * 100
    assert 0 <= held <= amount


def test_ceil_percent_examples():
    assert [ceil_percent(10, 10_000), ceil_percent(10, 10_001), ceil_percent(0, 99)] == [
        1_000,
        1_001,
        0,
    ]


@given(PERCENT, st.lists(st.tuples(FEN, st.integers(min_value=1, max_value=1_000)), max_size=20))
def test_holdback_rounds_each_receipt_up_on_its_own(percent, receipts):
    each = [amount for amount, count in receipts for _ in range(count)]
    held = holdback_fen(percent, receipts)
    assert held == sum(ceil_percent(percent, amount) for amount in each)
    # Never less than the exact share, and less than one fen more per receipt.
    exact = Fraction(percent * sum(each), 100)
    assert exact <= held < exact + len(each) or held == exact == 0


def test_holdback_of_the_review():
    """Three receipts of 10,000 fen at 10%: 3,000 fen, not 3,002."""
    assert holdback_fen(10, [(10_000, 3)]) == 3_000


@given(FEN, PERCENT, FEN)
def test_floor_is_the_larger_of_setting_and_share(setting, percent, unconsumed):
    floor = floor_fen(setting, percent, unconsumed)
    assert floor >= setting and floor >= Fraction(percent * unconsumed, 100)
    assert floor in (setting, ceil_percent(percent, unconsumed))


@given(SIGNED_FEN, FEN)
def test_coverage_ratio_is_b_over_r_rounded_half_up(balance, required):
    ratio = coverage_ratio(balance, required)
    if required == 0:
        assert ratio is None
        return
    assert ratio is not None and ratio.as_tuple().exponent == -4
    # Half-up on the magnitude (Decimal's ROUND_HALF_UP), checked with exact fractions.
    magnitude = floor(Fraction(abs(balance) * 10_000, required) + Fraction(1, 2))
    assert Fraction(ratio) == Fraction(magnitude if balance >= 0 else -magnitude, 10_000)


@pytest.mark.parametrize(
    ("balance", "required", "shown"),
    [
        (200_000, 150_000, "1.3333"),
        (200_000, 300_000, "0.6667"),  # ROUND_DOWN would give 0.6666
        (1, 20_000, "0.0001"),  # exactly half a unit of the last place: up
        (1, 20_001, "0.0000"),
        (-1, 20_000, "-0.0001"),  # half-up rounds the magnitude, as Decimal's ROUND_HALF_UP
        (0, 5, "0.0000"),
        (5, 5, "1.0000"),
    ],
)
def test_coverage_ratio_examples(balance, required, shown):
    assert str(coverage_ratio(balance, required)) == shown


@st.composite
def figures(draw) -> Figures:
    return Figures(
        ledger_balance_fen=draw(FEN),
        bank_balance_fen=draw(st.none() | SIGNED_FEN),
        unconsumed_fen=draw(FEN),
        holdback_fen=draw(FEN),
        floor_fen=draw(FEN),
        releasable_fen=draw(FEN),
        in_transit_fen=draw(FEN),
        suspense_fen=draw(FEN),
        month_payouts_fen=draw(FEN),
        monthly_cap_multiple=draw(st.none() | st.integers(min_value=0, max_value=5)),
    )


@given(figures())
def test_figures_identities(view):
    bank = view.bank_balance_fen
    assert view.balance_fen == (
        view.ledger_balance_fen if bank is None else min(view.ledger_balance_fen, bank)
    )
    assert view.required_fen == view.unconsumed_fen + view.holdback_fen + view.floor_fen
    assert view.headroom_fen == (
        view.balance_fen - view.in_transit_fen - view.suspense_fen - view.required_fen
    )
    if view.monthly_cap_multiple is None:
        assert view.monthly_cap_left_fen is None
    else:
        assert view.monthly_cap_left_fen == (
            view.monthly_cap_multiple * view.floor_fen - view.month_payouts_fen
        )
    named = view.named()
    assert all(named[name] == getattr(view, name) for name in named)


@given(figures())
def test_allowance_is_never_above_any_limit(view):
    allowance = view.payout_allowance_fen
    limits = [view.releasable_fen, view.headroom_fen]
    if view.monthly_cap_left_fen is not None:
        limits.append(view.monthly_cap_left_fen)
    # The most that fits every limit, and never below 0.
    assert allowance == max(0, min(limits))
    if allowance > 0:
        assert all(allowance <= limit for limit in limits)
        left = view.balance_fen - view.in_transit_fen - view.suspense_fen - allowance
        assert left >= view.required_fen


REFUSALS = (NothingReleasable, MonthlyCapReached, AmountExceedsReleasable, MinBalanceViolation)


@given(figures(), st.none() | st.integers(min_value=1, max_value=10**16))
def test_a_payout_is_allowed_exactly_when_it_fits_the_allowance(view, asked):
    allowance = view.payout_allowance_fen
    cap_left = view.monthly_cap_left_fen
    fits = allowance > 0 and (asked is None or asked <= allowance)
    try:
        paid = checked_amount(view, asked)
    except REFUSALS as refusal:
        assert not fits
        # The figures come along, and the code names a limit that really stops it.
        assert refusal.extra["payout_allowance_fen"] == allowance
        assert refusal.extra.get("requested_fen") == asked
        if isinstance(refusal, NothingReleasable):
            assert allowance == 0
        if isinstance(refusal, MonthlyCapReached):
            assert cap_left is not None and (cap_left <= 0 or (asked or 0) > cap_left)
        if isinstance(refusal, AmountExceedsReleasable):
            assert asked is not None and asked > view.releasable_fen
        if isinstance(refusal, MinBalanceViolation):
            assert asked is not None and asked > view.headroom_fen
        return
    assert fits and paid == (allowance if asked is None else asked)


@pytest.mark.parametrize(
    ("changes", "asked", "code"),
    [
        ({"releasable_fen": 0}, None, "nothing_releasable"),
        ({"ledger_balance_fen": 150_000}, None, "nothing_releasable"),  # headroom 0
        ({"ledger_balance_fen": 150_000}, 1, "nothing_releasable"),
        ({"monthly_cap_multiple": 2, "month_payouts_fen": 100_000}, None, "monthly_cap_reached"),
        ({"monthly_cap_multiple": 2, "month_payouts_fen": 90_000}, 10_001, "monthly_cap_reached"),
        ({}, 100_001, "amount_exceeds_releasable"),
        ({}, 50_001, "min_balance_violation"),
    ],
)
def test_each_refusal_names_its_limit(changes, asked, code):
    # B 200,000; R = 100,000 + 50,000; releasable 100,000: the allowance is 50,000.
    base = {
        "ledger_balance_fen": 200_000,
        "bank_balance_fen": None,
        "unconsumed_fen": 100_000,
        "holdback_fen": 0,
        "floor_fen": 50_000,
        "releasable_fen": 100_000,
        "in_transit_fen": 0,
        "suspense_fen": 0,
        "month_payouts_fen": 0,
        "monthly_cap_multiple": None,
    }
    with pytest.raises(REFUSALS) as refused:
        checked_amount(Figures(**(base | changes)), asked)
    assert refused.value.code == code
