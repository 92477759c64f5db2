"""Properties of the money helpers (app/kit/money.py): the lesson price by the remainder rule, and
exact conversions to and from the banks' decimal strings."""

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.kit.money import INT64_MAX, fen_from_digits, fen_from_yuan, lessons_amount, yuan

TOTAL = st.integers(min_value=0, max_value=INT64_MAX)
LESSONS = st.integers(min_value=1, max_value=500)


@st.composite
def package_in_batches(draw) -> tuple[int, int, list[int]]:
    """A package (total, lessons) and the lessons recorded as consecutive batches covering it."""
    total, lessons = draw(TOTAL), draw(LESSONS)
    cuts = draw(st.sets(st.integers(min_value=1, max_value=500), max_size=20))
    bounds = [0, *sorted(cut for cut in cuts if cut < lessons), lessons]
    return total, lessons, [b - a for a, b in pairwise(bounds)]


@given(package_in_batches())
def test_lessons_add_up_exactly_to_the_package(package):
    total, lessons, batches = package
    first, amounts = 1, []
    for count in batches:
        amounts.append(lessons_amount(total, lessons, first, count))
        first += count
    assert sum(amounts) == total
    price = total // lessons
    # Every batch but the last costs the price per lesson; the last takes the remainder too.
    assert amounts[:-1] == [price * count for count in batches[:-1]]
    assert amounts[-1] == price * batches[-1] + total % lessons


@given(TOTAL, LESSONS, st.integers(min_value=-3, max_value=503), st.integers(-3, 503))
def test_lessons_outside_the_package_are_refused(total, lessons, first, count):
    inside = first >= 1 and count >= 1 and first + count - 1 <= lessons
    if inside:
        assert 0 <= lessons_amount(total, lessons, first, count) <= total
    else:
        with pytest.raises(ValueError):
            lessons_amount(total, lessons, first, count)


def test_lessons_amount_examples():
    assert [lessons_amount(100, 3, n, 1) for n in (1, 2, 3)] == [33, 33, 34]
    assert lessons_amount(100, 3, 1, 3) == 100


@given(st.integers(min_value=0, max_value=INT64_MAX))
def test_yuan_and_back_is_exact(fen):
    text = yuan(fen)
    assert fen_from_yuan(text) == fen
    whole, cents = text.split(".")
    assert len(cents) == 2 and int(whole) * 100 + int(cents) == fen
    assert fen_from_digits(str(fen)) == fen


@given(st.text(alphabet="0123456789.-+eE ", max_size=22))
def test_yuan_strings_are_exact_or_refused(text):
    try:
        fen = fen_from_yuan(text)
    except ValueError:
        return
    whole, _, cents = text.partition(".")
    assert len(cents) <= 2 and whole.isdigit() and (cents == "" or cents.isdigit())
    assert fen == int(whole) * 100 + int(cents.ljust(2, "0"))


@pytest.mark.parametrize("text", ["1.234", "-1.00", "1e3", " 1.00", "01.00", "1.", ".5", ""])
def test_inexact_yuan_strings_are_refused(text):
    with pytest.raises(ValueError):
        fen_from_yuan(text)


def test_the_largest_bigint_is_the_largest_amount():
    assert fen_from_digits(str(INT64_MAX)) == INT64_MAX == fen_from_yuan(yuan(INT64_MAX))
    for text in (str(INT64_MAX + 1), "9" * 20):
        with pytest.raises(ValueError):
            fen_from_digits(text)
    with pytest.raises(ValueError):
        fen_from_yuan(yuan(INT64_MAX // 100 * 100) + "0")  # a third decimal
    with pytest.raises(ValueError):
        fen_from_yuan(f"{INT64_MAX // 100 + 1}.00")
