"""When a lesson may be recorded and how long its parent has to answer (rule 6): a late record gives
the parent the full working days from the moment it was recorded; a lesson before the payment, on a
day the payment does not cover, or older than `max_lesson_backdate_days` is refused. The clock is
moved (time-machine); no date is backdated to stand in for it."""

from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

import chinese_calendar
from hypothesis import given
from hypothesis import strategies as st

from app.db.unit import Database
from app.kit.clock import SHANGHAI
from app.kit.workdays import local_date
from app.lessons.rules import confirm_due_on
from tests.enrollments.helpers import enrolled, make_course, pay
from tests.factories import auth, make_world
from tests.lessons.helpers import (
    Paid,
    auto_confirm,
    enrollment_view,
    fifteen_working_days_after,
    money,
    noon,
    paid_enrollment,
    record,
    recorded,
)

# A Monday morning in Shanghai, with ordinary weeks around it.
T0 = datetime.combine(date(2026, 3, 16), time(10), SHANGHAI)


async def _status(client, world, lesson) -> str:
    response = await client.get(f"/v1/lessons/{lesson['id']}", headers=auth(world.institution_key))
    return response.json()["status"]


async def test_a_backdated_lesson_gives_the_parent_the_full_working_days_from_its_recording(
    client, engine, time_machine
):
    time_machine.move_to(T0)
    world = await make_world(engine)
    enrollment = await paid_enrollment(engine, world, lessons=10, amount_fen=100_000)
    time_machine.move_to(T0 + timedelta(days=6))

    lesson = await recorded(client, world, enrollment, occurred_at=T0)

    recorded_on = local_date(T0 + timedelta(days=6))
    due = fifteen_working_days_after(recorded_on)
    assert lesson["confirm_due_on"] == due.isoformat()
    # Counted from the lesson's own day, the time would have ended days earlier: the job run the
    # next day must leave it to the parent.
    from_the_lesson = fifteen_working_days_after(local_date(T0))
    assert from_the_lesson < due
    db = Database(engine)
    time_machine.move_to(noon(from_the_lesson + timedelta(days=1)))
    await auto_confirm(db, noon(from_the_lesson + timedelta(days=1)))
    assert await _status(client, world, lesson) == "pending_confirmation"
    assert await money(engine, enrollment) == (100_000, 0)

    time_machine.move_to(noon(due + timedelta(days=1)))
    await auto_confirm(db, noon(due + timedelta(days=1)))
    assert await _status(client, world, lesson) == "auto_confirmed"
    assert await money(engine, enrollment) == (90_000, 10_000)


async def test_a_lesson_before_the_payment_is_refused(client, engine, time_machine):
    time_machine.move_to(T0)
    world = await make_world(engine)
    enrollment = await paid_enrollment(engine, world)  # paid a day before T0
    paid_at = T0 - timedelta(days=1)

    before = await record(client, world, enrollment, occurred_at=paid_at - timedelta(hours=1))
    after = await record(client, world, enrollment, occurred_at=paid_at + timedelta(minutes=1))

    assert before.status_code == 422, before.text
    assert before.json()["code"] == "lesson_before_payment"
    assert after.status_code == 201, after.text
    view = await enrollment_view(client, world, enrollment)
    assert (view["lessons_pending"], view["refundable_fen"]) == (1, 90_000)


async def test_a_lesson_older_than_the_backdate_limit_is_refused(client, engine, time_machine):
    time_machine.move_to(T0)
    world = await make_world(engine)  # max_lesson_backdate_days = 7
    enrollment = await paid_enrollment(engine, world)
    time_machine.move_to(T0 + timedelta(days=8))
    # Whole local days: the day seven days before today is allowed from its first moment.
    seventh_day = datetime.combine(local_date(T0) + timedelta(days=1), time(0), SHANGHAI)

    too_old = await record(
        client, world, enrollment, occurred_at=seventh_day - timedelta(seconds=1)
    )
    seven_days = await record(client, world, enrollment, occurred_at=seventh_day)
    batch = await client.post(
        "/v1/lessons/batch",
        headers=auth(world.institution_key),
        json={
            "items": [
                {
                    "enrollment_id": str(enrollment.id),
                    "lesson_key": "old-in-batch",
                    "occurred_at": (seventh_day - timedelta(hours=1)).isoformat(),
                    "count": 1,
                }
            ]
        },
    )

    assert too_old.status_code == 422, too_old.text
    assert (too_old.json()["code"], too_old.json()["max_lesson_backdate_days"]) == (
        "lesson_too_old",
        7,
    )
    assert seven_days.status_code == 201, seven_days.text
    [result] = batch.json()["results"]
    assert (result["status"], result["code"]) == ("refused", "lesson_too_old")
    assert (await enrollment_view(client, world, enrollment))["lessons_pending"] == 1


async def test_the_backdate_limit_is_the_jurisdictions(client, engine, time_machine):
    time_machine.move_to(T0)
    world = await make_world(engine, max_lesson_backdate_days=0)
    enrollment = await paid_enrollment(engine, world)

    # Paid a day before T0, at 10:00; T0's day only is allowed.
    yesterday = await record(client, world, enrollment, occurred_at=T0 - timedelta(hours=11))
    today = await record(client, world, enrollment, occurred_at=T0 - timedelta(hours=9))

    assert (yesterday.status_code, yesterday.json()["code"]) == (422, "lesson_too_old")
    assert today.status_code == 201, today.text


async def _enrolled_and_paid(client, engine, world, course, **span) -> Paid:
    enrollment = await enrolled(client, world, course["id"], 10, **span)
    await pay(engine, world, enrollment)
    return Paid(UUID(enrollment["id"]), world.institution_id, enrollment["parent_key"])


async def test_a_lesson_outside_the_days_the_payment_covers_is_refused(
    client, engine, time_machine
):
    time_machine.move_to(T0)
    world = await make_world(engine)
    start = local_date(T0)
    course = await make_course(client, world, 10_000, start, start + timedelta(days=10))
    whole = await _enrolled_and_paid(client, engine, world, course)
    later = await _enrolled_and_paid(
        client, engine, world, course, valid_from=(start + timedelta(days=5)).isoformat()
    )
    time_machine.move_to(T0 + timedelta(days=1))

    not_yet = await record(client, world, later, occurred_at=T0 + timedelta(days=1))

    time_machine.move_to(T0 + timedelta(days=12))
    last_day = datetime.combine(start + timedelta(days=10), time(18), SHANGHAI)
    on_the_last_day = await record(client, world, whole, occurred_at=last_day)
    after_it = await record(client, world, whole, occurred_at=last_day + timedelta(hours=7))

    assert not_yet.status_code == 422, not_yet.text
    assert (not_yet.json()["code"], not_yet.json()["valid_from"]) == (
        "lesson_outside_validity",
        (start + timedelta(days=5)).isoformat(),
    )
    assert on_the_last_day.status_code == 201, on_the_last_day.text
    assert after_it.status_code == 422, after_it.text
    assert (after_it.json()["code"], after_it.json()["valid_until"]) == (
        "lesson_outside_validity",
        (start + timedelta(days=10)).isoformat(),
    )
    assert (await enrollment_view(client, world, later))["lessons_pending"] == 0
    assert (await enrollment_view(client, world, whole))["lessons_pending"] == 1


# Within the years the calendar publishes; the offsets reach past both ends of the backdate limit.
moments = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2026, 10, 31), timezones=st.just(UTC)
)


@given(
    recorded_at=moments,
    offset=st.timedeltas(min_value=timedelta(days=-30), max_value=timedelta(minutes=5)),
    workdays=st.integers(min_value=0, max_value=30),
)
def test_the_parent_never_gets_less_than_the_working_days_from_the_recording(
    recorded_at, offset, workdays
):
    """Whatever `occurred_at` says, the deadline leaves the parent at least `workdays` working days
    (counted from chinese_calendar, independently) after the day the lesson was recorded, and
    exactly that many when the lesson was given on or before that day."""
    occurred_at = recorded_at + offset
    due = confirm_due_on(occurred_at, recorded_at, workdays)

    start = local_date(recorded_at)
    counted = sum(
        chinese_calendar.is_workday(start + timedelta(days=n))
        for n in range(1, (due - start).days + 1)
    )
    assert due >= start and counted >= workdays
    if local_date(occurred_at) <= start:
        assert counted == workdays
        assert workdays == 0 or chinese_calendar.is_workday(due)
