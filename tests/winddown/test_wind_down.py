"""Winding an institution down through the API: every fen not released to the institution goes back
to its payer by the normal refund instructions, once, even when the order is repeated, given twice at
once, or its process dies half-way; the summary follows the bank's results."""

import asyncio
import signal
import uuid
from datetime import timedelta

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from app.db.unit import Database
from app.enrollments.rules import refundable_fen
from app.kit.clock import utcnow
from app.lessons.service import return_held_lessons
from app.models import Enrollment, Lesson, Refund
from app.models.api_key import Role
from app.models.lesson import LessonStatus
from app.winddown import service
from tests.banks.simulated import PRICE, Simulated, simulated_bank
from tests.factories import auth, make_jurisdiction, make_key, make_paid_enrollment, make_world
from tests.test_idempotency_unit import Service

REASON = {"reason": "the school closed its doors (跑路)"}


@pytest.fixture
def batches_of(app):
    """Sets the application's wind-down batch size, so a few enrollments make several batches."""

    def set_size(size: int) -> None:
        app.state.settings = app.state.settings.model_copy(update={"wind_down_batch_size": size})

    return set_size


def _path(institution_id) -> str:
    return f"/v1/regulator/institutions/{institution_id}/wind-down"


async def _refunds(engine, institution_id) -> list[Refund]:
    return list(
        await Database(engine).run(
            lambda session: session.scalars(
                select(Refund).where(Refund.institution_id == institution_id)
            )
        )
    )


async def _enrollment(sim: Simulated, enrollment_id: str) -> dict:
    seen = await sim.service.get(f"/v1/enrollments/{enrollment_id}", headers=sim.institution)
    assert seen.status_code == 200, seen.text
    return seen.json()


async def _lesson(sim: Simulated, enrollment: dict, key: str) -> dict:
    recorded = await sim.service.post(
        f"/v1/enrollments/{enrollment['id']}/lessons",
        headers=sim.institution,
        json={"lesson_key": key, "occurred_at": utcnow().isoformat(), "count": 1},
    )
    assert recorded.status_code == 201, recorded.text
    return recorded.json()


async def _school_with_families(sim: Simulated) -> dict[str, dict]:
    """Four families, each in another state: lessons confirmed and pending; a lesson in dispute; a
    refund the institution has not answered; not paid at all."""
    families = {name: await sim.enroll(4) for name in ("busy", "disputing", "asking", "unpaid")}
    for name in ("busy", "disputing", "asking"):
        family = families[name]
        await sim.pay(family["order_no"], family["amount_fen"])
    busy, disputing, asking = families["busy"], families["disputing"], families["asking"]
    confirmed = await _lesson(sim, busy, f"b1-{uuid.uuid4().hex}")
    answer = await sim.service.post(
        f"/v1/lessons/{confirmed['id']}/confirm", headers=auth(busy["parent_key"])
    )
    assert answer.status_code == 200, answer.text
    await _lesson(sim, busy, f"b2-{uuid.uuid4().hex}")  # pending confirmation
    contested = await _lesson(sim, disputing, f"d1-{uuid.uuid4().hex}")
    answer = await sim.service.post(
        f"/v1/lessons/{contested['id']}/dispute",
        headers=auth(disputing["parent_key"]),
        json={"reason": "the teacher never came"},
    )
    assert answer.status_code == 200, answer.text
    asked = await sim.service.post(
        f"/v1/enrollments/{asking['id']}/refunds",
        headers=auth(asking["parent_key"]),
        json={"reason": "moving away"},
    )
    assert asked.status_code == 201, asked.text
    assert asked.json()["status"] == "requested"
    return families


async def test_every_unreleased_fen_goes_back_to_its_payer_once_and_settles(engine, database_url):
    async with simulated_bank(engine, database_url, "ums") as sim:
        families = await _school_with_families(sim)
        before = {name: await _enrollment(sim, f["id"]) for name, f in families.items()}
        # U: paid, less the lesson released to the institution; pending and disputed included.
        assert [before[n]["unconsumed_fen"] for n in ("busy", "disputing", "asking", "unpaid")] == [
            3 * PRICE,
            4 * PRICE,
            4 * PRICE,
            0,
        ]
        total_u = (await sim.balance_view())["unconsumed_fen"]
        assert total_u == 11 * PRICE

        ordered = await sim.service.post(
            _path(sim.institution_id), headers=sim.regulator, json=REASON
        )
        assert ordered.status_code == 202, ordered.text
        summary = ordered.json()
        assert (summary["refunds"], summary["amount_fen"]) == (3, total_u)
        assert (summary["status"], summary["enrollments_covered"]) == ("completed", 4)
        institution = await sim.service.get(
            f"/v1/institutions/{sim.institution_id}", headers=sim.regulator
        )
        assert institution.json()["status"] == "frozen"

        # Ordered again: nothing new, the same figures.
        again = await sim.service.post(
            _path(sim.institution_id), headers=sim.regulator, json=REASON
        )
        assert again.status_code == 202, again.text
        assert (again.json()["refunds"], again.json()["amount_fen"]) == (3, total_u)

        await sim.run_job("dispatch_instructions")
        at_bank = [i for i in await sim.bank_instructions() if i["kind"] == "refund"]
        # Each payer gets exactly what was not released on their enrollment, once.
        refunds = await _refunds(engine, sim.institution_id)
        by_enrollment = {str(r.enrollment_id): r for r in refunds}
        assert len(refunds) == 3 == len(by_enrollment)
        for name in ("busy", "disputing", "asking"):
            refund = by_enrollment[families[name]["id"]]
            assert refund.amount_fen == before[name]["unconsumed_fen"]
        # The parent's own request was taken over, not doubled.
        assert by_enrollment[families["asking"]["id"]].decided_by == "wind_down"
        assert sorted(i["amount_fen"] for i in at_bank) == sorted(r.amount_fen for r in refunds)
        assert {i["id"] for i in at_bank} == {r.instruction_id for r in refunds}

        await sim.settle("success")
        await sim.run_job("poll_instructions")
        seen = await sim.service.get(_path(sim.institution_id), headers=sim.regulator)
        assert seen.status_code == 200, seen.text
        assert seen.json()["settled"] == {"count": 3, "amount_fen": total_u}
        assert seen.json()["failed"] == {"count": 0, "amount_fen": 0}
        for name in ("busy", "disputing", "asking"):
            after = await _enrollment(sim, families[name]["id"])
            assert (after["status"], after["unconsumed_fen"]) == ("refunded", 0)
        view = await sim.balance_view()
        assert view["unconsumed_fen"] == 0
        # What stays is the lesson released to the institution, at the bank as in the ledger.
        assert view["ledger_balance_fen"] == await sim.bank_balance() == PRICE


async def test_a_refund_the_bank_refuses_is_counted_as_failed(engine, database_url):
    async with simulated_bank(engine, database_url, "gmbank") as sim:
        families = [await sim.enroll(2) for _ in range(2)]
        for family in families:
            await sim.pay(family["order_no"], family["amount_fen"])
        ordered = await sim.service.post(
            _path(sim.institution_id), headers=sim.regulator, json=REASON
        )
        assert ordered.status_code == 202, ordered.text
        await sim.run_job("dispatch_instructions")
        first, second = sorted(
            (i for i in await sim.bank_instructions() if i["kind"] == "refund"),
            key=lambda i: i["id"],
        )
        await sim.settle("fail", instruction_ids=[first["id"]])
        await sim.settle("success", instruction_ids=[second["id"]])
        await sim.run_job("poll_instructions")
        summary = (await sim.service.get(_path(sim.institution_id), headers=sim.regulator)).json()
        assert summary["settled"] == {"count": 1, "amount_fen": second["amount_fen"]}
        assert summary["failed"] == {"count": 1, "amount_fen": first["amount_fen"]}
        assert (summary["refunds"], summary["amount_fen"]) == (2, 4 * PRICE)


async def _world_of(engine, count: int, **lessons):
    world = await make_world(engine)
    enrollments = [
        await make_paid_enrollment(engine, world, lessons=5, **lessons) for _ in range(count)
    ]
    return world, enrollments


async def test_a_run_that_dies_after_a_batch_is_finished_by_the_next_order(
    engine, client, monkeypatch, batches_of
):
    world, enrollments = await _world_of(engine, 5, released=1, pending=1)
    batches_of(2)
    deaths = []

    def die_once(name: str) -> None:
        if not deaths:
            deaths.append(name)
            raise RuntimeError("the process died here")

    monkeypatch.setattr(service, "crash_point", die_once)
    headers = auth(world.regulator_key)
    died = await client.post(_path(world.institution_id), headers=headers, json=REASON)
    assert died.status_code == 500
    assert deaths == ["wind_down.batch_committed"]
    half = await client.get(_path(world.institution_id), headers=headers)
    assert half.json()["status"] == "running"
    assert (half.json()["enrollments_covered"], half.json()["refunds"]) == (2, 2)

    resumed = await client.post(_path(world.institution_id), headers=headers, json=REASON)
    assert resumed.status_code == 202, resumed.text
    assert resumed.json()["status"] == "completed"
    refunds = await _refunds(engine, world.institution_id)
    # 5 lessons of 10,000 each, one released: 40,000 back to each payer, once.
    assert sorted(str(r.enrollment_id) for r in refunds) == sorted(str(e.id) for e in enrollments)
    assert {r.amount_fen for r in refunds} == {40_000}
    assert resumed.json()["amount_fen"] == 5 * 40_000


async def test_the_resume_job_finishes_a_run_that_died(engine, client, monkeypatch, batches_of):
    world, _enrollments = await _world_of(engine, 3)
    batches_of(1)
    monkeypatch.setattr(service, "crash_point", _raise)
    headers = auth(world.regulator_key)
    died = await client.post(_path(world.institution_id), headers=headers, json=REASON)
    assert died.status_code == 500
    monkeypatch.setattr(service, "crash_point", lambda name: None)
    ran = await client.post(
        "/v1/admin/jobs/resume_wind_downs", headers=auth(world.admin_key), json={}
    )
    assert ran.status_code == 200, ran.text
    done = (await client.get(_path(world.institution_id), headers=headers)).json()
    assert (done["status"], done["refunds"], done["amount_fen"]) == ("completed", 3, 3 * 50_000)


def _raise(name: str) -> None:
    raise RuntimeError(name)


async def test_a_process_killed_after_a_batch_leaves_the_rest_to_the_next_order(
    engine, monkeypatch
):
    """The real thing: the service's process is SIGKILLed right after its first batch committed."""
    world, enrollments = await _world_of(engine, 5, pending=1)
    headers = auth(world.regulator_key)
    monkeypatch.setenv("WIND_DOWN_BATCH_SIZE", "2")
    doomed = await asyncio.to_thread(Service, "wind_down.batch_committed")
    try:
        async with httpx.AsyncClient(base_url=doomed.url, timeout=60) as http:
            with pytest.raises(httpx.TransportError):  # the process died mid-request
                await http.post(_path(world.institution_id), headers=headers, json=REASON)
        assert doomed.process.wait(10) == -signal.SIGKILL
    finally:
        doomed.stop()
    left = await _refunds(engine, world.institution_id)
    assert len(left) == 2  # the first batch, committed

    survivor = await asyncio.to_thread(Service)
    try:
        async with httpx.AsyncClient(base_url=survivor.url, timeout=60) as http:
            finished = await http.post(_path(world.institution_id), headers=headers, json=REASON)
    finally:
        await asyncio.to_thread(survivor.stop)
    assert finished.status_code == 202, finished.text
    assert (finished.json()["status"], finished.json()["enrollments_covered"]) == ("completed", 5)
    refunds = await _refunds(engine, world.institution_id)
    assert sorted(str(r.enrollment_id) for r in refunds) == sorted(str(e.id) for e in enrollments)
    assert {r.id for r in left} <= {r.id for r in refunds}
    assert finished.json()["amount_fen"] == sum(r.amount_fen for r in refunds) == 5 * 50_000


@pytest.mark.postgres_only
async def test_orders_given_at_once_refund_each_enrollment_once(engine, live_client, batches_of):
    world, _enrollments = await _world_of(engine, 7, pending=2)
    batches_of(2)
    headers = auth(world.regulator_key)
    answers = await asyncio.gather(
        *(
            live_client.post(_path(world.institution_id), headers=headers, json=REASON)
            for _ in range(4)
        )
    )
    assert [a.status_code for a in answers] == [202] * 4, [a.text for a in answers]
    refunds = await _refunds(engine, world.institution_id)
    assert len(refunds) == 7 == len({r.enrollment_id for r in refunds})
    assert {r.amount_fen for r in refunds} == {50_000}
    assert {a.json()["amount_fen"] for a in answers} == {7 * 50_000}


async def test_an_idempotency_key_replays_the_first_answer(engine, client):
    world, _ = await _world_of(engine, 2)
    headers = {**auth(world.regulator_key), "Idempotency-Key": f"wind-down-{uuid.uuid4()}"}
    first = await client.post(_path(world.institution_id), headers=headers, json=REASON)
    assert first.status_code == 202, first.text
    again = await client.post(_path(world.institution_id), headers=headers, json=REASON)
    assert again.status_code == 202, again.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    assert len(await _refunds(engine, world.institution_id)) == 2


async def test_a_payer_asking_after_the_wind_down_is_told_a_refund_is_under_way(engine, client):
    world, [enrollment] = await _world_of(engine, 1)
    parent = await make_key(engine, Role.parent, enrollment_id=enrollment.id)
    ordered = await client.post(
        _path(world.institution_id), headers=auth(world.regulator_key), json=REASON
    )
    assert ordered.status_code == 202, ordered.text
    asked = await client.post(
        f"/v1/enrollments/{enrollment.id}/refunds", headers=auth(parent), json={"reason": "x"}
    )
    assert asked.status_code == 409 and asked.json()["code"] == "refund_in_progress"


async def test_auto_confirmation_stops_for_an_institution_being_wound_down(engine, client):
    world, _ = await _world_of(engine, 1, pending=2)
    admin = auth(world.admin_key)
    # The pending lessons' money is the payer's once the order is given.
    ordered = await client.post(
        _path(world.institution_id), headers=auth(world.regulator_key), json=REASON
    )
    assert ordered.json()["amount_fen"] == 50_000
    later = (utcnow() + timedelta(days=60)).isoformat()
    ran = await client.post(
        "/v1/admin/jobs/auto_confirm_lessons", headers=admin, json={"as_of": later}
    )
    assert ran.status_code == 200, ran.text
    statuses = await Database(engine).run(
        lambda session: session.scalars(
            select(Lesson.status).where(Lesson.institution_id == world.institution_id)
        )
    )
    assert set(statuses) == {LessonStatus.resolved_for_parent}


# --- misuse ---


async def test_misuse_is_refused_and_changes_nothing(engine, client):
    world, [enrollment] = await _world_of(engine, 1)
    path = _path(world.institution_id)
    regulator = auth(world.regulator_key)
    elsewhere = auth(
        await make_key(engine, Role.regulator, jurisdiction_code=await make_jurisdiction(engine))
    )
    parent = auth(await make_key(engine, Role.parent, enrollment_id=enrollment.id))
    for body in (
        {},
        {"reason": ""},
        {"reason": "   "},
        {"reason": "x" * 501},
        {"reason": "ok", "x": 1},
    ):
        refused = await client.post(path, headers=regulator, json=body)
        assert refused.status_code == 422, body
        assert refused.json()["code"] == "validation_error"
    for caller in (elsewhere, auth(world.institution_key), parent):
        assert (await client.post(path, headers=caller, json=REASON)).status_code == 404
        assert (await client.get(path, headers=caller)).status_code == 404
    unknown = await client.post(_path(uuid.uuid4()), headers=regulator, json=REASON)
    assert unknown.status_code == 404
    assert (await client.post(path, json=REASON)).status_code == 401
    never = await client.get(path, headers=regulator)
    assert (never.status_code, never.json()["code"]) == (404, "wind_down_not_found")
    assert await _refunds(engine, world.institution_id) == []
    institution = await client.get(f"/v1/institutions/{world.institution_id}", headers=regulator)
    assert institution.json()["status"] == "active"


# --- the rule: what a wind-down refunds ---


@given(
    lessons=st.integers(1, 60),
    price=st.integers(1, 100_000),
    states=st.lists(st.sampled_from(list(LessonStatus)), max_size=60),
    refunded_share=st.integers(0, 100),
)
def test_returning_held_lessons_makes_everything_unreleased_refundable(
    lessons, price, states, refunded_share
):
    """Whatever state the lessons are in, once the held ones (pending, disputed) are returned, a
    refund takes exactly U: paid, less released, less refunds already under way."""
    from app.lessons.service import _tally

    states = states[:lessons]
    enrollment = Enrollment(
        id=uuid.uuid4(),
        lessons=lessons,
        amount_fen=lessons * price,
        paid_fen=lessons * price,
        status="active",
        lessons_confirmed=0,
        lessons_pending=0,
        lessons_disputed=0,
        confirmed_fen=0,
        pending_fen=0,
        disputed_fen=0,
        refunded_fen=0,
    )
    lesson_rows = []
    for number, state in enumerate(states, start=1):
        lesson = Lesson(
            id=uuid.uuid4(),
            enrollment_id=enrollment.id,
            count=1,
            first_no=number,
            amount_fen=price,
            status=state,
        )
        _tally(enrollment, lesson, LessonStatus(state), +1)
        lesson_rows.append(lesson)
    free = (
        enrollment.paid_fen
        - enrollment.confirmed_fen
        - enrollment.pending_fen
        - enrollment.disputed_fen
    )
    enrollment.refunded_fen = free * refunded_share // 100
    unreleased = enrollment.paid_fen - enrollment.confirmed_fen - enrollment.refunded_fen
    held = [
        lesson
        for lesson in lesson_rows
        if lesson.status in (LessonStatus.pending_confirmation, LessonStatus.disputed)
    ]
    return_held_lessons(held, {enrollment.id: enrollment}, "wind_down", "closed", utcnow())
    assert refundable_fen(enrollment) == unreleased
    assert enrollment.lessons_pending == enrollment.lessons_disputed == 0
    assert enrollment.pending_fen == enrollment.disputed_fen == 0


@given(st.uuids(), st.uuids(), st.uuids())
def test_a_wind_down_refund_id_is_one_per_enrollment(wind_down_id, first, second):
    assert service.refund_id_for(wind_down_id, first) == service.refund_id_for(wind_down_id, first)
    assert (
        service.refund_id_for(wind_down_id, first) == service.refund_id_for(wind_down_id, second)
    ) is (first == second)
