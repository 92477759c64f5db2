"""The auto-confirm job: silence for `parent_auto_confirm_workdays` working days of China's calendar
counts as consent, across the 2026 Spring Festival and its make-up working days."""

import asyncio
from datetime import date, datetime, time, timedelta

import chinese_calendar
import pytest

from app.db.unit import Database
from app.kit.clock import SHANGHAI
from tests.factories import auth, make_world
from tests.lessons.helpers import (
    auto_confirm,
    enrollment_view,
    fifteen_working_days_after,
    money,
    noon,
    paid_enrollment,
    recorded,
)

HELD_ON = date(2026, 2, 10)


def test_the_calendar_has_the_2026_spring_festival_and_its_make_up_days():
    assert chinese_calendar.is_workday(date(2026, 2, 14))  # a Saturday worked
    assert chinese_calendar.is_workday(date(2026, 2, 28))  # a Saturday worked
    holiday = [date(2026, 2, 15) + timedelta(days=n) for n in range(9)]
    assert not any(chinese_calendar.is_workday(day) for day in holiday)
    # So the 15 working days after 10 February end on 9 March: not on 3 March as they would with
    # plain weekends, nor on 11 March as they would without the make-up days.
    assert fifteen_working_days_after(HELD_ON) == date(2026, 3, 9)


async def test_a_lesson_left_unanswered_is_confirmed_once_its_working_days_have_passed(
    client, engine, time_machine
):
    held_at = datetime.combine(HELD_ON, time(18), SHANGHAI)
    time_machine.move_to(held_at)
    world = await make_world(engine)
    enrollment = await paid_enrollment(engine, world, lessons=10, amount_fen=100_000)
    lesson = await recorded(client, world, enrollment, occurred_at=held_at)
    due = fifteen_working_days_after(HELD_ON)
    assert lesson["confirm_due_on"] == due.isoformat()
    db = Database(engine)

    async def status() -> str:
        response = await client.get(
            f"/v1/lessons/{lesson['id']}", headers=auth(world.institution_key)
        )
        return response.json()["status"]

    # On the due day itself the parent may still answer.
    time_machine.move_to(noon(due))
    await auto_confirm(db, noon(due))
    assert await status() == "pending_confirmation"
    assert await money(engine, enrollment) == (100_000, 0)

    time_machine.move_to(noon(due + timedelta(days=1)))
    await auto_confirm(db, noon(due + timedelta(days=1)))

    assert await status() == "auto_confirmed"
    assert await money(engine, enrollment) == (90_000, 10_000)
    view = await enrollment_view(client, world, enrollment)
    assert (view["lessons_consumed"], view["lessons_pending"]) == (1, 0)

    # Run again, nothing more happens (to this test's lessons: other tests' may be due too).
    await auto_confirm(db, noon(due + timedelta(days=1)))
    assert await money(engine, enrollment) == (90_000, 10_000)
    confirm = await client.post(
        f"/v1/lessons/{lesson['id']}/confirm", headers=auth(enrollment.parent_key)
    )
    assert (confirm.status_code, confirm.json()["code"]) == (409, "lesson_not_pending")


async def test_the_job_leaves_answered_lessons_alone(client, engine, time_machine):
    at = datetime.combine(HELD_ON, time(9), SHANGHAI)
    time_machine.move_to(at)
    world = await make_world(engine)
    enrollment = await paid_enrollment(engine, world, lessons=10, amount_fen=100_000)
    parent = auth(enrollment.parent_key)
    confirmed, silent = [await recorded(client, world, enrollment, occurred_at=at) for _ in "ab"]
    await client.post(f"/v1/lessons/{confirmed['id']}/confirm", headers=parent)

    time_machine.move_to(noon(date(2026, 3, 20)))
    await auto_confirm(Database(engine), noon(date(2026, 3, 20)))

    after = await client.get(f"/v1/lessons/{confirmed['id']}", headers=parent)
    assert (after.json()["status"], after.json()["decided_by"]) == ("confirmed", "parent")
    late = await client.get(f"/v1/lessons/{silent['id']}", headers=parent)
    assert (late.json()["status"], late.json()["decided_by"]) == ("auto_confirmed", "auto")
    assert await money(engine, enrollment) == (80_000, 20_000)


@pytest.mark.postgres_only
async def test_two_jobs_at_once_release_each_lesson_once(client, engine, time_machine):
    held_at = datetime.combine(HELD_ON, time(9), SHANGHAI)
    time_machine.move_to(held_at)
    world = await make_world(engine, max_prepaid_amount_fen=600_000)
    enrollments = [
        await paid_enrollment(engine, world, lessons=60, amount_fen=600_000) for _ in range(3)
    ]
    at = held_at.isoformat()
    for enrollment in enrollments:
        response = await client.post(
            "/v1/lessons/batch",
            headers=auth(world.institution_key),
            json={
                "items": [
                    {
                        "enrollment_id": str(enrollment.id),
                        "lesson_key": f"{enrollment.id}-{n}",
                        "occurred_at": at,
                        "count": 1,
                    }
                    for n in range(60)
                ]
            },
        )
        assert response.status_code == 200
    db = Database(engine)
    time_machine.move_to(noon(date(2026, 3, 20)))

    handled = await asyncio.gather(*(auto_confirm(db, noon(date(2026, 3, 20))) for _ in range(2)))

    assert sum(handled) >= 180  # lessons of other tests may be due too
    prepaid_and_released = [await money(engine, enrollment) for enrollment in enrollments]
    assert [prepaid for prepaid, _ in prepaid_and_released] == [0, 0, 0]
    assert prepaid_and_released[0][1] == 1_800_000  # releasable, the institution's
    for enrollment in enrollments:
        view = await enrollment_view(client, world, enrollment)
        assert (view["status"], view["lessons_consumed"]) == ("completed", 60)


@pytest.mark.postgres_only
async def test_a_confirmation_a_dispute_and_the_job_at_once_one_wins_and_money_moves_once(
    client, engine
):
    """The parent confirms and disputes each lesson while the job auto-confirms them, all at once:
    each lesson ends as exactly one of them made it, the others are refused (or, the job, skip it),
    and only a released lesson's money has moved, once."""
    world = await make_world(engine)
    enrollment = await paid_enrollment(engine, world, lessons=10, amount_fen=100_000)
    lessons = [await recorded(client, world, enrollment) for _ in range(6)]
    parent = auth(enrollment.parent_key)
    due = max(date.fromisoformat(lesson["confirm_due_on"]) for lesson in lessons)

    async def confirm(lesson):
        return await client.post(f"/v1/lessons/{lesson['id']}/confirm", headers=parent)

    async def dispute(lesson):
        return await client.post(
            f"/v1/lessons/{lesson['id']}/dispute", headers=parent, json={"reason": "absent"}
        )

    async def job():
        await asyncio.sleep(0.1)  # so that some answers get there first, and the job takes the rest
        return await auto_confirm(Database(engine), noon(due + timedelta(days=1)))

    # Confirmation first for half the lessons, the dispute first for the others.
    results = await asyncio.gather(
        *(
            racer(lesson)
            for number, lesson in enumerate(lessons)
            for racer in ((confirm, dispute) if number % 2 else (dispute, confirm))
        ),
        job(),
    )

    answers = iter(results[:-1])
    released_fen = 0
    for number, lesson in enumerate(lessons):
        first, second = next(answers), next(answers)
        confirmed, disputed = (first, second) if number % 2 else (second, first)
        final = (await client.get(f"/v1/lessons/{lesson['id']}", headers=parent)).json()
        winners = {
            "confirmed": confirmed.status_code == 200,
            "disputed": disputed.status_code == 200,
        }
        assert sum(winners.values()) <= 1, (confirmed.text, disputed.text)
        for name, response in (("confirmed", confirmed), ("disputed", disputed)):
            if not winners[name]:
                assert (response.status_code, response.json()["code"]) == (
                    409,
                    "lesson_not_pending",
                )
        if final["status"] == "auto_confirmed":
            assert not any(winners.values())
        else:
            assert winners[final["status"]], final
        if final["status"] != "disputed":
            released_fen += final["amount_fen"]
    assert await money(engine, enrollment) == (100_000 - released_fen, released_fen)
    view = await enrollment_view(client, world, enrollment)
    statuses = [
        (await client.get(f"/v1/lessons/{lesson['id']}", headers=parent)).json()["status"]
        for lesson in lessons
    ]
    disputed = statuses.count("disputed")
    assert (view["lessons_pending"], view["lessons_disputed"], view["lessons_consumed"]) == (
        0,
        disputed,
        len(lessons) - disputed,
    )
