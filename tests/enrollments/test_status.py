"""What an enrollment shows is what is true: the payment deadline only while awaiting payment;
`active` while a refund is on its way, `refunded` once the bank has paid it, back to `active` if it
failed. And the money left after `valid_until` is the parent's: a refund asked for then is approved
at once, without the institution."""

from datetime import date, datetime, time, timedelta

from app.banks.protocol import ResultStatus
from app.db.unit import Database
from app.instructions.outcomes import Outcome, apply_outcome
from app.kit.clock import SHANGHAI
from app.kit.workdays import local_date
from tests.enrollments.helpers import enrolled, make_course, pay
from tests.factories import auth, make_world

T0 = datetime.combine(date(2026, 3, 16), time(10), SHANGHAI)


async def _view(client, world, enrollment) -> dict:
    response = await client.get(
        f"/v1/enrollments/{enrollment['id']}", headers=auth(world.institution_key)
    )
    assert response.status_code == 200, response.text
    return response.json()


async def _record(client, world, enrollment, occurred_at: datetime):
    return await client.post(
        f"/v1/enrollments/{enrollment['id']}/lessons",
        headers=auth(world.institution_key),
        json={
            "lesson_key": f"{enrollment['id']}-{occurred_at.isoformat()}",
            "occurred_at": (occurred_at.isoformat()),
            "count": 1,
        },
    )


async def _ask_refund(client, enrollment) -> dict:
    response = await client.post(
        f"/v1/enrollments/{enrollment['id']}/refunds",
        headers=auth(enrollment["parent_key"]),
        json={"reason": "moving away"},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _bank_says(engine, refund: dict, status: ResultStatus) -> None:
    await Database(engine).run(
        lambda session: apply_outcome(session, refund["instruction_id"], Outcome(status))
    )


async def _paid(client, engine, world, course, lessons=10) -> dict:
    enrollment = await enrolled(client, world, course["id"], lessons)
    await pay(engine, world, enrollment)
    return enrollment


# The tests below enroll and pay at T0, then move the clock on to give lessons after it.
LATER = T0 + timedelta(hours=2)


async def test_the_payment_deadline_shows_only_while_awaiting_payment(client, engine):
    world = await make_world(engine)
    course = await make_course(client, world, 10_000)
    enrollment = await enrolled(client, world, course["id"], 10)
    assert enrollment["expires_at"] is not None
    assert (await _view(client, world, enrollment))["expires_at"] == enrollment["expires_at"]

    await pay(engine, world, enrollment)

    view = await _view(client, world, enrollment)
    assert (view["status"], view["expires_at"]) == ("active", None)
    assert view["paid_at"] is not None


async def test_an_enrollment_is_refunded_only_once_the_bank_has_paid_the_refund(
    client, engine, time_machine
):
    time_machine.move_to(T0)
    world = await make_world(engine)
    course = await make_course(client, world, 10_000)
    enrollment = await _paid(client, engine, world, course)
    time_machine.move_to(LATER)
    assert (await _record(client, world, enrollment, LATER)).status_code == 201
    refund = await _ask_refund(client, enrollment)
    approved = await client.post(
        f"/v1/refunds/{refund['id']}/approve", headers=auth(world.institution_key)
    )
    assert approved.status_code == 200, approved.text
    refund = approved.json()

    on_its_way = await _view(client, world, enrollment)
    assert (on_its_way["status"], on_its_way["refund_under_way"]) == ("active", True)
    assert (on_its_way["refunded_fen"], on_its_way["refundable_fen"]) == (90_000, 0)
    # What is left (the pending lesson) is not the institution's to add to meanwhile.
    more = await _record(client, world, enrollment, LATER + timedelta(minutes=1))
    assert (more.status_code, more.json()["code"]) == (409, "enrollment_not_active")

    await _bank_says(engine, refund, ResultStatus.settled)

    paid_back = await _view(client, world, enrollment)
    assert (paid_back["status"], paid_back["refunded_fen"]) == ("refunded", 90_000)
    assert paid_back["refund_under_way"] is False


async def test_a_failed_refund_leaves_the_enrollment_as_it_was(client, engine, time_machine):
    time_machine.move_to(T0)
    world = await make_world(engine)
    course = await make_course(client, world, 10_000)
    enrollment = await _paid(client, engine, world, course)
    refund = await _ask_refund(client, enrollment)
    refund = (
        await client.post(
            f"/v1/refunds/{refund['id']}/approve", headers=auth(world.institution_key)
        )
    ).json()

    await _bank_says(engine, refund, ResultStatus.failed)

    view = await _view(client, world, enrollment)
    assert (view["status"], view["refunded_fen"], view["refundable_fen"]) == ("active", 0, 100_000)
    assert view["refund_under_way"] is False
    time_machine.move_to(LATER)
    assert (await _record(client, world, enrollment, LATER)).status_code == 201


async def test_a_refund_returned_after_it_was_paid_reopens_the_enrollment(
    client, engine, time_machine
):
    time_machine.move_to(T0)
    world = await make_world(engine)
    course = await make_course(client, world, 10_000)
    enrollment = await _paid(client, engine, world, course)
    refund = await _ask_refund(client, enrollment)
    refund = (
        await client.post(
            f"/v1/refunds/{refund['id']}/approve", headers=auth(world.institution_key)
        )
    ).json()
    await _bank_says(engine, refund, ResultStatus.settled)
    assert (await _view(client, world, enrollment))["status"] == "refunded"

    await _bank_says(engine, refund, ResultStatus.returned)

    view = await _view(client, world, enrollment)
    assert (view["status"], view["refunded_fen"], view["refundable_fen"]) == ("active", 0, 100_000)


async def test_a_refund_asked_after_valid_until_is_approved_without_the_institution(
    client, engine, time_machine
):
    time_machine.move_to(T0)
    world = await make_world(engine)  # the institution has 5 working days to answer, normally
    start = local_date(T0)
    course = await make_course(client, world, 10_000, start, start + timedelta(days=10))
    ended = await _paid(client, engine, world, course)
    running = await _paid(client, engine, world, course)
    assert ended["valid_until"] == (start + timedelta(days=10)).isoformat()
    time_machine.move_to(LATER)
    assert (await _record(client, world, ended, LATER)).status_code == 201

    # On the last day covered, the institution still answers; the day after, it has no say.
    time_machine.move_to(datetime.combine(start + timedelta(days=10), time(22), SHANGHAI))
    asked_in_time = await _ask_refund(client, running)
    time_machine.move_to(datetime.combine(start + timedelta(days=11), time(9), SHANGHAI))
    asked_after = await _ask_refund(client, ended)

    assert (asked_in_time["status"], asked_in_time["decided_by"]) == ("requested", None)
    assert (asked_after["status"], asked_after["decided_by"]) == ("approved", "validity_ended")
    assert asked_after["amount_fen"] == 90_000  # all but the pending lesson
    assert asked_after["instruction_id"] is not None
    view = await _view(client, world, ended)
    assert (view["status"], view["refunded_fen"], view["refundable_fen"]) == ("active", 90_000, 0)
    reject = await client.post(
        f"/v1/refunds/{asked_after['id']}/reject",
        headers=auth(world.institution_key),
        json={"reason": "no"},
    )
    assert reject.status_code == 409
