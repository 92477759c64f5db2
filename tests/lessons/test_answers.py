"""The parent's answer (confirm, dispute) and the resolution of a dispute, with the money each
moves and who may do what."""

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.kit.clock import utcnow
from app.models.api_key import Role
from tests.factories import auth, make_key, make_world
from tests.lessons.helpers import enrollment_view, money, paid_enrollment, recorded


async def test_confirming_releases_the_lessons_money_once(client, engine):
    world = await make_world(engine)
    enrollment = await paid_enrollment(engine, world, lessons=10, amount_fen=100_000)
    lesson = await recorded(client, world, enrollment, count=2)
    parent = auth(enrollment.parent_key)

    confirmed = await client.post(f"/v1/lessons/{lesson['id']}/confirm", headers=parent)

    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert (body["status"], body["decided_by"], body["amount_fen"]) == (
        "confirmed",
        "parent",
        20_000,
    )
    assert await money(engine, enrollment) == (80_000, 20_000)
    view = await enrollment_view(client, world, enrollment)
    assert (view["lessons_consumed"], view["lessons_pending"], view["unconsumed_fen"]) == (
        2,
        0,
        80_000,
    )

    again = await client.post(f"/v1/lessons/{lesson['id']}/confirm", headers=parent)
    assert (again.status_code, again.json()) == (200, body)
    assert await money(engine, enrollment) == (80_000, 20_000)
    disputed = await client.post(
        f"/v1/lessons/{lesson['id']}/dispute", headers=parent, json={"reason": "late"}
    )
    assert (disputed.status_code, disputed.json()["code"]) == (409, "lesson_not_pending")


async def test_a_dispute_holds_the_money_until_resolved(client, engine):
    world = await make_world(engine)
    enrollment = await paid_enrollment(engine, world, lessons=10, amount_fen=100_000)
    lesson = await recorded(client, world, enrollment)
    parent = auth(enrollment.parent_key)

    disputed = await client.post(
        f"/v1/lessons/{lesson['id']}/dispute", headers=parent, json={"reason": "teacher absent"}
    )

    assert disputed.status_code == 200, disputed.text
    assert (disputed.json()["status"], disputed.json()["dispute_reason"]) == (
        "disputed",
        "teacher absent",
    )
    assert await money(engine, enrollment) == (100_000, 0)
    view = await enrollment_view(client, world, enrollment)
    assert (view["lessons_disputed"], view["lessons_pending"], view["refundable_fen"]) == (
        1,
        0,
        90_000,
    )
    confirm = await client.post(f"/v1/lessons/{lesson['id']}/confirm", headers=parent)
    assert (confirm.status_code, confirm.json()["code"]) == (409, "lesson_not_pending")
    refund = await client.post(
        f"/v1/enrollments/{enrollment.id}/refunds", headers=parent, json={"reason": "moving"}
    )
    assert refund.json()["amount_fen"] == 90_000  # the disputed lesson's money stays held


async def test_the_regulator_resolves_for_the_institution_which_releases_the_money(client, engine):
    world = await make_world(engine)
    enrollment = await paid_enrollment(engine, world, lessons=10, amount_fen=100_000)
    lesson = await recorded(client, world, enrollment)
    await client.post(
        f"/v1/lessons/{lesson['id']}/dispute",
        headers=auth(enrollment.parent_key),
        json={"reason": "absent"},
    )

    resolved = await client.post(
        f"/v1/lessons/{lesson['id']}/resolve",
        headers=auth(world.regulator_key),
        json={"in_favor_of": "institution", "note": "attendance sheet signed"},
    )

    assert resolved.status_code == 200, resolved.text
    body = resolved.json()
    assert (body["status"], body["decided_by"], body["resolution_note"]) == (
        "resolved_for_institution",
        "regulator",
        "attendance sheet signed",
    )
    assert await money(engine, enrollment) == (90_000, 10_000)
    view = await enrollment_view(client, world, enrollment)
    assert (view["lessons_consumed"], view["lessons_disputed"]) == (1, 0)
    twice = await client.post(
        f"/v1/lessons/{lesson['id']}/resolve",
        headers=auth(world.regulator_key),
        json={"in_favor_of": "parent"},
    )
    assert (twice.status_code, twice.json()["code"]) == (409, "lesson_not_disputed")
    assert await money(engine, enrollment) == (90_000, 10_000)


async def test_resolved_for_the_parent_the_lesson_is_refundable_again(client, engine):
    world = await make_world(engine)
    enrollment = await paid_enrollment(engine, world, lessons=10, amount_fen=100_000)
    lesson = await recorded(client, world, enrollment)
    await client.post(
        f"/v1/lessons/{lesson['id']}/dispute",
        headers=auth(enrollment.parent_key),
        json={"reason": "absent"},
    )

    # The institution may concede.
    resolved = await client.post(
        f"/v1/lessons/{lesson['id']}/resolve",
        headers=auth(world.institution_key),
        json={"in_favor_of": "parent"},
    )

    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["status"], resolved.json()["decided_by"]) == (
        "resolved_for_parent",
        "institution",
    )
    assert await money(engine, enrollment) == (100_000, 0)
    view = await enrollment_view(client, world, enrollment)
    assert (view["lessons_disputed"], view["lessons_pending"], view["refundable_fen"]) == (
        0,
        0,
        100_000,
    )


async def test_who_may_resolve(client, engine):
    world = await make_world(engine)
    elsewhere = await make_world(engine)
    enrollment = await paid_enrollment(engine, world)
    lesson = await recorded(client, world, enrollment)
    pending = await recorded(client, world, enrollment)
    await client.post(
        f"/v1/lessons/{lesson['id']}/dispute",
        headers=auth(enrollment.parent_key),
        json={"reason": "absent"},
    )
    url = f"/v1/lessons/{lesson['id']}/resolve"
    for_institution = {"in_favor_of": "institution"}
    admin = await make_key(engine, Role.admin)

    itself = await client.post(url, headers=auth(world.institution_key), json=for_institution)
    parent = await client.post(
        url, headers=auth(enrollment.parent_key), json={"in_favor_of": "parent"}
    )
    others = [
        await client.post(url, headers=auth(key), json=for_institution)
        for key in (elsewhere.regulator_key, elsewhere.institution_key, admin)
    ]
    not_disputed = await client.post(
        f"/v1/lessons/{pending['id']}/resolve",
        headers=auth(world.regulator_key),
        json=for_institution,
    )

    assert (itself.status_code, itself.json()["code"]) == (403, "resolution_forbidden")
    assert parent.status_code == 404
    assert [response.status_code for response in others] == [404, 404, 404]
    assert (not_disputed.status_code, not_disputed.json()["code"]) == (409, "lesson_not_disputed")
    seen = await client.get(f"/v1/lessons/{lesson['id']}", headers=auth(world.institution_key))
    assert seen.json()["status"] == "disputed"
    assert await money(engine, enrollment) == (100_000, 0)


async def test_another_parent_or_the_institution_cannot_answer_for_the_parent(client, engine):
    world = await make_world(engine)
    enrollment = await paid_enrollment(engine, world)
    neighbour = await paid_enrollment(engine, world)
    lesson = await recorded(client, world, enrollment)

    answers = [
        await client.post(f"/v1/lessons/{lesson['id']}/confirm", headers=auth(key))
        for key in (neighbour.parent_key, world.institution_key)
    ] + [
        await client.post(
            f"/v1/lessons/{lesson['id']}/dispute", headers=auth(key), json={"reason": "x"}
        )
        for key in (neighbour.parent_key, world.institution_key)
    ]
    listed = await client.get(
        f"/v1/enrollments/{enrollment.id}/lessons", headers=auth(neighbour.parent_key)
    )
    seen = await client.get(f"/v1/lessons/{lesson['id']}", headers=auth(neighbour.parent_key))

    assert [response.status_code for response in answers] == [404] * 4
    assert (listed.status_code, seen.status_code) == (404, 404)
    assert await money(engine, enrollment) == (100_000, 0)
    mine = await client.get(f"/v1/lessons/{lesson['id']}", headers=auth(enrollment.parent_key))
    assert mine.json()["status"] == "pending_confirmation"


async def test_a_dispute_after_the_time_to_answer_is_too_late(client, engine, time_machine):
    world = await make_world(engine, parent_auto_confirm_workdays=1)
    enrollment = await paid_enrollment(engine, world)
    lesson = await recorded(client, world, enrollment)
    # Two weeks always hold more than one working day, whatever the holidays.
    time_machine.move_to(utcnow() + timedelta(days=14))

    late = await client.post(
        f"/v1/lessons/{lesson['id']}/dispute",
        headers=auth(enrollment.parent_key),
        json={"reason": "absent"},
    )

    assert (late.status_code, late.json()["code"]) == (409, "confirmation_window_closed")
    view = await enrollment_view(client, world, enrollment)
    assert (view["lessons_pending"], view["lessons_disputed"]) == (1, 0)


@pytest.mark.postgres_only
async def test_a_confirmation_locks_the_lesson_then_the_enrollment_then_the_ledger(client, engine):
    """The lock order of the module: while another transaction holds the enrollment (as a payment
    or a refund does, before the ledger), a confirmation waits holding the lesson and not yet the
    ledger, so the other can go on to the ledger without a deadlock."""
    world = await make_world(engine)
    enrollment = await paid_enrollment(engine, world)
    lesson = await recorded(client, world, enrollment)
    institution = {"i": world.institution_id, "e": enrollment.id, "l": uuid.UUID(lesson["id"])}
    async with engine.connect() as holder:
        await holder.begin()
        await holder.execute(
            text("SELECT 1 FROM enrollments WHERE institution_id = :i AND id = :e FOR UPDATE"),
            institution,
        )
        holder_pid = await holder.scalar(text("SELECT pg_backend_pid()"))
        confirming = asyncio.create_task(
            client.post(f"/v1/lessons/{lesson['id']}/confirm", headers=auth(enrollment.parent_key))
        )
        await _until_blocked_by(engine, holder_pid, confirming)

        async def lockable(statement: str) -> bool:
            async with engine.connect() as probe:
                try:
                    await probe.execute(text(statement + " FOR UPDATE NOWAIT"), institution)
                except DBAPIError:
                    return False
                return True

        assert not await lockable("SELECT 1 FROM lessons WHERE institution_id = :i AND id = :l")
        assert await lockable("SELECT 1 FROM ledger_heads WHERE institution_id = :i")
        await holder.rollback()
    response = await confirming
    assert (response.status_code, response.json()["status"]) == (200, "confirmed")


async def _until_blocked_by(engine, holder_pid: int, request: asyncio.Task) -> None:
    """Until another backend waits on a lock `holder_pid` holds (the confirmation, on the
    enrollment); fails at once if the request ends instead."""
    async with engine.connect() as watcher:
        for _ in range(1500):  # a loaded machine may take seconds to get there
            if request.done():
                response = request.result()
                raise AssertionError(
                    f"the confirmation ended without waiting: {response.status_code} {response.text}"
                )
            waiting = await watcher.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE :holder = ANY(pg_blocking_pids(pid))"
                ),
                {"holder": holder_pid},
            )
            if waiting:
                return
            await asyncio.sleep(0.02)
    raise AssertionError("the confirmation never waited for the enrollment")
