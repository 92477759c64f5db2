"""Recording lessons: single and batch, pricing by the remainder rule, idempotency on lesson_key,
refusals, scope, and never more lessons than purchased."""

import asyncio
from datetime import timedelta

import pytest

from app.kit.clock import utcnow
from app.kit.workdays import add_workdays, local_date
from tests.factories import auth, make_world
from tests.lessons.helpers import enrollment_view, money, paid_enrollment, record, recorded


async def test_a_recorded_lesson_is_pending_priced_and_due_after_the_working_days(client, engine):
    world = await make_world(engine, parent_auto_confirm_workdays=3)
    enrollment = await paid_enrollment(engine, world, lessons=10, amount_fen=100_000)
    occurred_at = utcnow() - timedelta(hours=1)

    response = await record(client, world, enrollment, key="k-1", occurred_at=occurred_at)

    assert response.status_code == 201, response.text
    lesson = response.json()
    assert lesson["enrollment_id"] == str(enrollment.id)
    assert (lesson["lesson_key"], lesson["status"], lesson["count"], lesson["amount_fen"]) == (
        "k-1",
        "pending_confirmation",
        1,
        10_000,
    )
    # Counted from the day it was recorded, the later of the two.
    assert lesson["confirm_due_on"] == add_workdays(local_date(utcnow()), 3).isoformat()
    view = await enrollment_view(client, world, enrollment)
    assert (view["lessons_pending"], view["lessons_consumed"], view["refundable_fen"]) == (
        1,
        0,
        90_000,
    )
    # Recording moves no money: it stays in the enrollment's prepaid account.
    assert await money(engine, enrollment) == (100_000, 0)
    seen = await client.get(f"/v1/lessons/{lesson['id']}", headers=auth(world.institution_key))
    assert seen.json() == lesson


async def test_the_last_lesson_takes_the_remainder_and_releases_add_up_to_what_was_paid(
    client, engine
):
    world = await make_world(engine)
    enrollment = await paid_enrollment(engine, world, lessons=10, amount_fen=100_003)

    lessons = [await recorded(client, world, enrollment) for _ in range(10)]

    assert [lesson["amount_fen"] for lesson in lessons] == [10_000] * 9 + [10_003]
    for lesson in lessons:
        confirmed = await client.post(
            f"/v1/lessons/{lesson['id']}/confirm", headers=auth(enrollment.parent_key)
        )
        assert confirmed.status_code == 200, confirmed.text
    assert await money(engine, enrollment) == (0, 100_003)
    view = await enrollment_view(client, world, enrollment)
    assert (view["status"], view["lessons_consumed"], view["unconsumed_fen"]) == (
        "completed",
        10,
        0,
    )


async def test_a_lesson_freed_for_the_parent_does_not_charge_the_remainder_twice(client, engine):
    world = await make_world(engine)
    enrollment = await paid_enrollment(engine, world, lessons=5, amount_fen=100_003)
    parent = auth(enrollment.parent_key)
    lessons = [await recorded(client, world, enrollment) for _ in range(5)]
    assert [lesson["amount_fen"] for lesson in lessons] == [20_000] * 4 + [20_003]
    voided = lessons[2]
    await client.post(f"/v1/lessons/{voided['id']}/dispute", headers=parent, json={"reason": "x"})
    resolved = await client.post(
        f"/v1/lessons/{voided['id']}/resolve",
        headers=auth(world.regulator_key),
        json={"in_favor_of": "parent"},
    )
    assert resolved.json()["status"] == "resolved_for_parent"

    replacement = await recorded(client, world, enrollment)

    # The remainder is held already (by the fifth lesson): the replacement costs the plain price.
    assert replacement["amount_fen"] == 20_000
    for lesson in [*lessons[:2], *lessons[3:], replacement]:
        response = await client.post(f"/v1/lessons/{lesson['id']}/confirm", headers=parent)
        assert response.status_code == 200, response.text
    assert await money(engine, enrollment) == (0, 100_003)


async def test_a_lesson_key_is_idempotent_and_refused_for_another_lesson(client, engine):
    world = await make_world(engine)
    enrollment = await paid_enrollment(engine, world)
    other = await paid_enrollment(engine, world)
    occurred_at = utcnow() - timedelta(minutes=30)
    first = await record(client, world, enrollment, key="same", occurred_at=occurred_at)
    assert first.status_code == 201

    again = await record(client, world, enrollment, key="same", occurred_at=occurred_at)

    assert again.status_code == 200
    assert again.json() == first.json()
    for changed in (
        {"occurred_at": occurred_at - timedelta(minutes=1)},
        {"count": 2},
        {"enrollment": other},
    ):
        target = changed.pop("enrollment", enrollment)
        reused = await record(
            client, world, target, key="same", **{"occurred_at": occurred_at, **changed}
        )
        assert reused.status_code == 409, reused.text
        assert reused.json()["code"] == "lesson_key_reused"
    assert (await enrollment_view(client, world, enrollment))["lessons_pending"] == 1
    assert (await enrollment_view(client, world, other))["lessons_pending"] == 0


async def test_refusals_change_nothing(client, engine):
    world = await make_world(engine)
    enrollment = await paid_enrollment(engine, world, lessons=3)
    unpaid = await paid_enrollment(engine, world, paid=False)
    await recorded(client, world, enrollment, count=2)

    exhausted = await record(client, world, enrollment, count=2)
    future = await record(client, world, enrollment, occurred_at=utcnow() + timedelta(minutes=10))
    inactive = await record(client, world, unpaid)
    naive = await client.post(
        f"/v1/enrollments/{enrollment.id}/lessons",
        headers=auth(world.institution_key),
        json={"lesson_key": "naive", "occurred_at": "2026-03-01T10:00:00", "count": 1},
    )
    zero = await record(client, world, enrollment, count=0)

    assert (exhausted.status_code, exhausted.json()["code"]) == (409, "lessons_exhausted")
    assert exhausted.json()["lessons_used"] == 2
    assert (future.status_code, future.json()["code"]) == (422, "occurred_in_future")
    assert (inactive.status_code, inactive.json()["code"]) == (409, "enrollment_not_active")
    assert (naive.status_code, naive.json()["code"]) == (422, "validation_error")
    assert (zero.status_code, zero.json()["code"]) == (422, "validation_error")
    # A few minutes of clock skew are tolerated.
    assert (
        await record(client, world, enrollment, occurred_at=utcnow() + timedelta(minutes=2))
    ).status_code == 201
    view = await enrollment_view(client, world, enrollment)
    assert (view["lessons_pending"], view["refundable_fen"]) == (3, 0)


async def test_lessons_of_another_institution_are_not_found(client, engine):
    world = await make_world(engine)
    elsewhere = await make_world(engine)
    enrollment = await paid_enrollment(engine, world)
    lesson = await recorded(client, world, enrollment)

    posted = await record(client, elsewhere, enrollment)
    seen = await client.get(f"/v1/lessons/{lesson['id']}", headers=auth(elsewhere.institution_key))
    listed = await client.get(
        f"/v1/enrollments/{enrollment.id}/lessons", headers=auth(elsewhere.institution_key)
    )
    by_other_regulator = await client.get(
        f"/v1/lessons/{lesson['id']}", headers=auth(elsewhere.regulator_key)
    )

    assert (posted.status_code, posted.json()["code"]) == (404, "enrollment_not_found")
    assert (seen.status_code, seen.json()["code"]) == (404, "lesson_not_found")
    assert (listed.status_code, by_other_regulator.status_code) == (404, 404)
    assert (await enrollment_view(client, world, enrollment))["lessons_pending"] == 1
    by_regulator = await client.get(
        f"/v1/lessons/{lesson['id']}", headers=auth(world.regulator_key)
    )
    assert by_regulator.json() == lesson


async def test_an_enrollments_lessons_page_in_the_order_given(client, engine):
    world = await make_world(engine)
    enrollment = await paid_enrollment(engine, world)
    now = utcnow()
    lessons = [
        await recorded(client, world, enrollment, occurred_at=now - timedelta(hours=hours))
        for hours in (1, 3, 2)
    ]
    expected = [lessons[1]["id"], lessons[2]["id"], lessons[0]["id"]]

    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await client.get(
            f"/v1/enrollments/{enrollment.id}/lessons",
            headers=auth(enrollment.parent_key),
            params=params,
        )
        assert page.status_code == 200, page.text
        seen += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    pending = await client.get(
        f"/v1/enrollments/{enrollment.id}/lessons",
        headers=auth(world.institution_key),
        params={"status": "confirmed"},
    )
    assert pending.json()["items"] == []


async def test_a_batch_accepts_and_refuses_each_item_on_its_own(client, engine):
    world = await make_world(engine)
    elsewhere = await make_world(engine)
    enrollment = await paid_enrollment(engine, world, lessons=3, amount_fen=30_001)
    foreign = await paid_enrollment(engine, elsewhere)
    at = (utcnow() - timedelta(hours=1)).isoformat()

    def item(key, target=enrollment, count=1, occurred_at=at):
        return {
            "enrollment_id": str(target.id),
            "lesson_key": key,
            "occurred_at": occurred_at,
            "count": count,
        }

    response = await client.post(
        "/v1/lessons/batch",
        headers=auth(world.institution_key),
        json={
            "items": [
                item("b-1"),
                item("b-1"),  # the same lesson again
                item("b-1", count=2),  # the key for another lesson
                item("b-2"),
                item("b-3", count=2),  # one lesson left
                item("b-4", target=foreign),
                item("b-5", occurred_at=(utcnow() + timedelta(hours=1)).isoformat()),
                item("b-6"),  # the last lesson, with the remainder
            ]
        },
    )

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["lesson_key"], r["status"], r.get("code")) for r in results] == [
        ("b-1", "accepted", None),
        ("b-1", "replayed", None),
        ("b-1", "refused", "lesson_key_reused"),
        ("b-2", "accepted", None),
        ("b-3", "refused", "lessons_exhausted"),
        ("b-4", "refused", "enrollment_not_found"),
        ("b-5", "refused", "occurred_in_future"),
        ("b-6", "accepted", None),
    ]
    assert results[1]["id"] == results[0]["id"]
    assert [results[i]["amount_fen"] for i in (0, 3, 7)] == [10_000, 10_000, 10_001]
    view = await enrollment_view(client, world, enrollment)
    assert (view["lessons_pending"], view["refundable_fen"]) == (3, 0)
    assert (await enrollment_view(client, elsewhere, foreign))["lessons_pending"] == 0

    # Sent again, every accepted item is a replay and nothing more is recorded.
    again = await client.post(
        "/v1/lessons/batch",
        headers=auth(world.institution_key),
        json={"items": [item("b-1"), item("b-2"), item("b-6")]},
    )
    assert [r["status"] for r in again.json()["results"]] == ["replayed"] * 3
    assert [r["id"] for r in again.json()["results"]] == [results[i]["id"] for i in (0, 3, 7)]


async def test_a_batch_holds_at_most_a_thousand_items(client, engine):
    world = await make_world(engine, max_prepaid_lessons=1000, max_prepaid_amount_fen=1_000_000)
    enrollment = await paid_enrollment(engine, world, lessons=1000, amount_fen=1_000_000)
    at = (utcnow() - timedelta(hours=1)).isoformat()
    items = [
        {"enrollment_id": str(enrollment.id), "lesson_key": f"m-{n}", "occurred_at": at, "count": 1}
        for n in range(1001)
    ]

    too_many = await client.post(
        "/v1/lessons/batch", headers=auth(world.institution_key), json={"items": items}
    )
    full = await client.post(
        "/v1/lessons/batch", headers=auth(world.institution_key), json={"items": items[:1000]}
    )

    assert (too_many.status_code, too_many.json()["code"]) == (422, "validation_error")
    assert full.status_code == 200
    assert {r["status"] for r in full.json()["results"]} == {"accepted"}
    assert (await enrollment_view(client, world, enrollment))["lessons_pending"] == 1000


@pytest.mark.postgres_only
async def test_twenty_concurrent_lessons_on_ten_purchased_accept_exactly_ten(client, engine):
    world = await make_world(engine)
    enrollment = await paid_enrollment(engine, world, lessons=10)

    responses = await asyncio.gather(*(record(client, world, enrollment) for _ in range(20)))

    codes = [r.status_code if r.status_code == 201 else r.json()["code"] for r in responses]
    assert codes.count(201) == 10
    assert codes.count("lessons_exhausted") == 10
    view = await enrollment_view(client, world, enrollment)
    assert (view["lessons_pending"], view["refundable_fen"]) == (10, 0)


@pytest.mark.postgres_only
async def test_one_key_sent_for_two_enrollments_at_once_records_one_lesson(client, engine):
    world = await make_world(engine)
    first = await paid_enrollment(engine, world)
    second = await paid_enrollment(engine, world)
    at = utcnow() - timedelta(minutes=5)

    responses = await asyncio.gather(
        *(record(client, world, target, key="race", occurred_at=at) for target in (first, second))
    )

    assert sorted(r.status_code for r in responses) == [201, 409]
    assert [r.json()["code"] for r in responses if r.status_code == 409] == ["lesson_key_reused"]
    pending = [
        (await enrollment_view(client, world, target))["lessons_pending"]
        for target in (first, second)
    ]
    assert sorted(pending) == [0, 1]


@pytest.mark.postgres_only
async def test_two_batches_racing_on_the_same_keys_record_each_key_once(client, engine):
    """Each batch is one transaction: the one that inserts second fails the unique key, runs again,
    and then finds every key recorded for the other enrollment."""
    world = await make_world(engine, max_prepaid_lessons=100, max_prepaid_amount_fen=1_000_000)
    targets = [await paid_enrollment(engine, world, lessons=100) for _ in range(2)]
    at = (utcnow() - timedelta(minutes=5)).isoformat()

    def batch(target):
        items = [
            {"enrollment_id": str(target.id), "lesson_key": f"r-{n}", "occurred_at": at}
            for n in range(50)
        ]
        return client.post(
            "/v1/lessons/batch", headers=auth(world.institution_key), json={"items": items}
        )

    responses = await asyncio.gather(*(batch(target) for target in targets))

    # Per batch, the distinct (status, code) of its items: all accepted, or all refused.
    outcomes = sorted(
        sorted({(r["status"], r.get("code")) for r in response.json()["results"]})
        for response in responses
    )
    assert outcomes == [[("accepted", None)], [("refused", "lesson_key_reused")]]
    pending = [(await enrollment_view(client, world, t))["lessons_pending"] for t in targets]
    assert sorted(pending) == [0, 50]
