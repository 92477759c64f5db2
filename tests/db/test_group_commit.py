"""app.db.group_commit: how a group is taken from the queue, and what a failed group answers."""

import asyncio
import contextvars

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from app.db.group_commit import GroupCommit, take_group

QUEUES = st.lists(st.tuples(st.sampled_from("abc"), st.integers()), min_size=1, max_size=40)


@given(QUEUES, st.integers(1, 12), st.booleans())
def test_a_group_is_the_heads_first_items_and_the_rest_stays_in_order(queue, most, confined):
    key = (lambda item: item[0]) if confined else None
    numbered = [(letter, n) for n, (letter, _) in enumerate(queue)]

    group, rest = take_group(numbered, most, key)

    assert 1 <= len(group) <= most
    assert group[0] == numbered[0]

    def place(item):
        return item[1]

    assert sorted(group + rest, key=place) == numbered  # nothing lost, nothing doubled
    # Each in the queue's order.
    assert group == sorted(group, key=place) and rest == sorted(rest, key=place)
    if confined:
        head = numbered[0][0]
        assert {letter for letter, _ in group} == {head}
        # No item of the head's key is skipped for a later one.
        assert group == [item for item in numbered if item[0] == head][:most]
    else:
        assert group == numbered[:most]


def _writer(engine, seen: list[list[str]], **options) -> GroupCommit[str, str]:
    async def write(connection, items: list[str]) -> list[str]:
        seen.append(list(items))
        await connection.execute(text("SELECT 1"))
        if "poison" in items:
            raise RuntimeError("planted")
        return [item.upper() for item in items]

    return GroupCommit(engine, write, name="test-writer", max_batch=64, max_wait=0.05, **options)


async def test_concurrent_items_share_a_transaction_and_each_gets_its_outcome(engine):
    seen: list[list[str]] = []
    writer = _writer(engine, seen)
    try:
        outcomes = await asyncio.gather(*(writer.submit(f"item{n}") for n in range(10)))
    finally:
        await writer.close()

    assert outcomes == [f"ITEM{n}" for n in range(10)]
    assert max(len(group) for group in seen) > 1


async def test_one_by_one_a_failing_item_fails_only_its_own_request(engine):
    seen: list[list[str]] = []
    writer = _writer(engine, seen, one_by_one=True)
    try:
        outcomes = await asyncio.gather(
            *(writer.submit(item) for item in ("a", "poison", "b")), return_exceptions=True
        )
    finally:
        await writer.close()

    assert outcomes[0] == "A" and outcomes[2] == "B"
    assert isinstance(outcomes[1], RuntimeError)
    assert seen[0] == ["a", "poison", "b"]  # first together, then each alone
    assert sorted(map(tuple, seen[1:])) == [("a",), ("b",), ("poison",)]


async def test_without_one_by_one_a_failed_group_fails_every_request_in_it(engine):
    seen: list[list[str]] = []
    writer = _writer(engine, seen)
    try:
        outcomes = await asyncio.gather(
            *(writer.submit(item) for item in ("a", "poison")), return_exceptions=True
        )
    finally:
        await writer.close()

    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)
    assert seen == [["a", "poison"]]


@pytest.mark.parametrize("in_flight", [1, 3])
async def test_confined_groups_never_mix_keys(engine, in_flight):
    seen: list[list[str]] = []
    writer = _writer(engine, seen, group_of=lambda item: item[0], in_flight=in_flight)
    items = [f"{letter}{n}" for n in range(8) for letter in "xyz"]
    try:
        outcomes = await asyncio.gather(*(writer.submit(item) for item in items))
    finally:
        await writer.close()

    assert outcomes == [item.upper() for item in items]
    assert all(len({item[0] for item in group}) == 1 for group in seen)
    assert max(len(group) for group in seen) > 1


async def test_closing_fails_whatever_still_waits(engine):
    seen: list[list[str]] = []
    writer = _writer(engine, seen)
    waiting = asyncio.ensure_future(writer.submit("late"))
    await asyncio.sleep(0)  # queued; the writer is still gathering company

    await writer.close()

    with pytest.raises(RuntimeError, match="shutting down"):
        await waiting


async def test_the_writer_runs_in_a_context_of_its_own_not_the_first_requests(engine):
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")
    seen: list[str] = []

    async def write(connection, items: list[str]) -> list[str]:
        seen.append(request_id.get())
        return items

    writer = GroupCommit(engine, write, name="test-writer", max_batch=8, max_wait=0)
    request_id.set("first-request")
    try:
        assert await writer.submit("item") == "item"
    finally:
        await writer.close()

    assert seen == ["none"]
