"""The price of recorded lessons (app/lessons/service.py::price_of_next) by the remainder rule of
DOMAIN.md: whatever the batches and whichever disputed lessons are resolved for the parent (voided)
along the way, the lessons held when the package is used up add up exactly to what was paid."""

import uuid
from dataclasses import dataclass
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from app.lessons.service import price_of_next
from app.lessons.types import LockedEnrollment

STATUSES = ("confirmed", "pending", "disputed")


@dataclass
class Held:
    count: int
    amount_fen: int
    status: str


def _enrollment(amount_fen: int, lessons: int, held: list[Held]) -> LockedEnrollment:
    """The enrollment's counters as the lesson service keeps them for the lessons held."""
    counters = {}
    for status in STATUSES:
        mine = [h for h in held if h.status == status]
        counters[f"lessons_{status}"] = sum(h.count for h in mine)
        counters[f"{status}_fen"] = sum(h.amount_fen for h in mine)
    return LockedEnrollment(
        id=uuid.uuid4(),
        status="active",
        lessons=lessons,
        amount_fen=amount_fen,
        refunded_fen=0,
        paid_at=None,
        valid_from=date(2026, 1, 1),
        valid_until=date(2026, 12, 31),
        **counters,
    )


# A step: record `count` lessons with a status, or void the n-th disputed lesson held.
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("record"), st.integers(1, 10), st.sampled_from(STATUSES)),
        st.tuples(st.just("void"), st.integers(0, 50), st.none()),
    ),
    max_size=60,
)


@given(st.integers(0, 10**12), st.integers(1, 60), STEPS)
def test_lessons_held_add_up_to_the_package_with_any_voids(amount, lessons, steps):
    held: list[Held] = []
    for action, number, status in steps:
        used = sum(h.count for h in held)
        if action == "void":
            disputed = [h for h in held if h.status == "disputed"]
            if disputed:
                held.remove(disputed[number % len(disputed)])
            continue
        count = min(number, lessons - used)
        if count == 0:
            continue
        price = price_of_next(_enrollment(amount, lessons, held), count)
        assert price >= 0
        held.append(Held(count, price, status))
        total = sum(h.amount_fen for h in held)
        assert total <= amount
        if used + count == lessons:
            assert total == amount  # the package used up: exactly what was paid, to the fen
        else:
            assert price == amount // lessons * count
    # Recording the rest now completes the package exactly, whatever happened before.
    rest = lessons - sum(h.count for h in held)
    if rest:
        last = price_of_next(_enrollment(amount, lessons, held), rest)
        assert sum(h.amount_fen for h in held) + last == amount


def test_a_voided_lesson_is_not_charged_twice():
    """100 fen for 3 lessons: 33 + 33, the first voided, then 33 + 34 = 100 for what is held."""
    held = [Held(1, 33, "disputed"), Held(1, 33, "pending")]
    held.pop(0)
    second = price_of_next(_enrollment(100, 3, held), 1)
    held.append(Held(1, second, "pending"))
    last = price_of_next(_enrollment(100, 3, held), 1)
    assert (second, last, 33 + second + last) == (33, 34, 100)
