"""Complaints through the API: a parent files about its enrollment (a lesson complaint disputes the
lesson), the regulator lists and resolves them once, and a burst about one institution raises a
YELLOW alert that resolution closes."""

import asyncio
import logging
import uuid
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from app.complaints.service import is_burst
from app.db.unit import Database
from app.kit.clock import utcnow
from app.models import Alert, Lesson
from app.models.alert import AlertKind
from app.models.api_key import Role
from tests.factories import auth, make_jurisdiction, make_key, make_paid_enrollment, make_world

TEXT = "老师连续三周没来上课。\nThe teacher missed three weeks."


async def _family(engine, world, **lessons):
    enrollment = await make_paid_enrollment(engine, world, lessons=10, **lessons)
    parent = auth(await make_key(engine, Role.parent, enrollment_id=enrollment.id))
    return enrollment, parent


async def _lessons(engine, enrollment) -> list[Lesson]:
    return list(
        await Database(engine).run(
            lambda session: session.scalars(
                select(Lesson)
                .where(Lesson.enrollment_id == enrollment.id)
                .order_by(Lesson.first_no)
            )
        )
    )


async def _file(client, parent, enrollment, **extra):
    body = {"enrollment_id": str(enrollment.id), "category": "other", "text": TEXT, **extra}
    return await client.post("/v1/complaints", headers=parent, json=body)


async def _bursts(engine, institution_id) -> list[Alert]:
    return list(
        await Database(engine).run(
            lambda session: session.scalars(
                select(Alert).where(
                    Alert.institution_id == institution_id,
                    Alert.kind == AlertKind.complaint_burst,
                )
            )
        )
    )


async def test_a_parent_files_and_the_regulator_resolves_once(engine, client):
    world = await make_world(engine)
    enrollment, parent = await _family(engine, world)
    filed = await _file(client, parent, enrollment, category="refund")
    assert filed.status_code == 201, filed.text
    complaint = filed.json()
    assert (complaint["status"], complaint["category"], complaint["text"]) == (
        "open",
        "refund",
        TEXT,
    )
    regulator = auth(world.regulator_key)
    listed = await client.get(
        "/v1/regulator/complaints",
        headers=regulator,
        params={"status": "open", "institution_id": str(world.institution_id)},
    )
    assert [c["id"] for c in listed.json()["items"]] == [complaint["id"]]

    path = f"/v1/regulator/complaints/{complaint['id']}/resolve"
    resolved = await client.post(path, headers=regulator, json={"outcome": "upheld", "note": "ok"})
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["status"], resolved.json()["outcome"]) == ("resolved", "upheld")
    again = await client.post(path, headers=regulator, json={"outcome": "rejected", "note": "no"})
    assert (again.status_code, again.json()["code"]) == (409, "complaint_resolved")
    seen = await client.get(f"/v1/complaints/{complaint['id']}", headers=parent)
    assert seen.json()["outcome"] == "upheld"  # the second answer changed nothing
    still_open = await client.get(
        "/v1/regulator/complaints",
        headers=regulator,
        params={"status": "open", "institution_id": str(world.institution_id)},
    )
    assert still_open.json()["items"] == []


async def test_the_text_is_never_logged(engine, client, caplog):
    world = await make_world(engine)
    enrollment, parent = await _family(engine, world, pending=1)
    [lesson] = await _lessons(engine, enrollment)
    secret = f"my son Xiao Ming {uuid.uuid4().hex} cried"
    with caplog.at_level(
        logging.INFO
    ):  # the service logs at INFO (the driver, at DEBUG, echoes SQL)
        filed = await _file(client, parent, enrollment, text=secret, lesson_id=str(lesson.id))
        assert filed.status_code == 201, filed.text
        resolved = await client.post(
            f"/v1/regulator/complaints/{filed.json()['id']}/resolve",
            headers=auth(world.regulator_key),
            json={"outcome": "upheld", "note": "seen"},
        )
        assert resolved.status_code == 200, resolved.text
    assert caplog.records  # the requests were logged...
    assert secret not in caplog.text  # ...without what the parent wrote
    assert "Xiao Ming" not in caplog.text


async def test_a_lesson_complaint_disputes_the_lesson(engine, client):
    world = await make_world(engine)
    enrollment, parent = await _family(engine, world, released=1, pending=1)
    confirmed, pending = await _lessons(engine, enrollment)
    filed = await _file(client, parent, enrollment, category="lesson", lesson_id=str(pending.id))
    assert filed.status_code == 201, filed.text
    assert filed.json()["lesson_disputed"] is True
    lesson = await client.get(
        f"/v1/enrollments/{enrollment.id}", headers=parent
    )  # the lesson's money is held as disputed
    assert lesson.json()["lessons_pending"] == 0
    [_, disputed] = await _lessons(engine, enrollment)
    assert disputed.status == "disputed"

    # A confirmed lesson stays confirmed; the complaint is filed all the same.
    late = await _file(client, parent, enrollment, category="lesson", lesson_id=str(confirmed.id))
    assert late.status_code == 201, late.text
    assert late.json()["lesson_disputed"] is False
    [still_confirmed, _] = await _lessons(engine, enrollment)
    assert still_confirmed.status == "confirmed"


async def test_a_lesson_of_another_enrollment_is_not_found_and_nothing_is_filed(engine, client):
    world = await make_world(engine)
    enrollment, parent = await _family(engine, world)
    other, _ = await _family(engine, world, pending=1)
    [their_lesson] = await _lessons(engine, other)
    for lesson_id in (their_lesson.id, uuid.uuid4()):
        refused = await _file(client, parent, enrollment, lesson_id=str(lesson_id))
        assert (refused.status_code, refused.json()["code"]) == (404, "lesson_not_found")
    [untouched] = await _lessons(engine, other)
    assert untouched.status == "pending_confirmation"
    listed = await client.get(
        "/v1/regulator/complaints",
        headers=auth(world.regulator_key),
        params={"institution_id": str(world.institution_id)},
    )
    assert listed.json()["items"] == []


async def test_outsiders_get_404(engine, client):
    world = await make_world(engine)
    enrollment, parent = await _family(engine, world)
    _, other_parent = await _family(engine, world)
    # Another enrollment's parent may not complain about this one, nor see its complaint.
    refused = await _file(client, other_parent, enrollment)
    assert refused.status_code == 404
    complaint = (await _file(client, parent, enrollment)).json()
    assert (
        await client.get(f"/v1/complaints/{complaint['id']}", headers=other_parent)
    ).status_code == 404
    # Only a parent files.
    for caller in (auth(world.institution_key), auth(world.regulator_key)):
        assert (await _file(client, caller, enrollment)).status_code == 404
    # A regulator of another jurisdiction sees nothing and resolves nothing.
    elsewhere = auth(
        await make_key(engine, Role.regulator, jurisdiction_code=await make_jurisdiction(engine))
    )
    listed = await client.get("/v1/regulator/complaints", headers=elsewhere)
    assert complaint["id"] not in [c["id"] for c in listed.json()["items"]]
    resolve = f"/v1/regulator/complaints/{complaint['id']}/resolve"
    body = {"outcome": "rejected", "note": "not mine"}
    assert (await client.post(resolve, headers=elsewhere, json=body)).status_code == 404
    assert (
        await client.get(f"/v1/complaints/{complaint['id']}", headers=elsewhere)
    ).status_code == 404
    # Neither the parent nor the institution resolves.
    for caller in (parent, auth(world.institution_key)):
        assert (await client.post(resolve, headers=caller, json=body)).status_code == 404
    assert (await client.get("/v1/regulator/complaints", headers=parent)).status_code == 404
    seen = await client.get(f"/v1/complaints/{complaint['id']}", headers=parent)
    assert seen.json()["status"] == "open"


async def test_bad_bodies_are_422_and_file_nothing(engine, client):
    world = await make_world(engine)
    enrollment, parent = await _family(engine, world)
    base = {"enrollment_id": str(enrollment.id), "category": "other", "text": TEXT}
    for change in (
        {"text": ""},
        {"text": "   \n  "},
        {"text": "x" * 2001},
        {"text": "bell\x07"},
        {"category": "noise"},
        {"enrollment_id": "not-a-uuid"},
        {"lesson_id": "nope"},
        {"extra": 1},
    ):
        refused = await client.post("/v1/complaints", headers=parent, json={**base, **change})
        assert (refused.status_code, refused.json()["code"]) == (422, "validation_error"), change
    complaint = (await _file(client, parent, enrollment)).json()
    resolve = f"/v1/regulator/complaints/{complaint['id']}/resolve"
    regulator = auth(world.regulator_key)
    for body in (
        {"outcome": "maybe", "note": "x"},
        {"outcome": "upheld"},
        {"outcome": "upheld", "note": " "},
    ):
        refused = await client.post(resolve, headers=regulator, json=body)
        assert refused.status_code == 422, body
    listed = await client.get(
        "/v1/regulator/complaints",
        headers=regulator,
        params={"institution_id": str(world.institution_id)},
    )
    assert len(listed.json()["items"]) == 1
    assert listed.json()["items"][0]["status"] == "open"


async def test_a_burst_raises_yellow_and_resolution_closes_it(engine, client):
    world = await make_world(engine, complaint_burst_count=3, complaint_burst_days=7)
    families = [await _family(engine, world) for _ in range(3)]
    filed = []
    for enrollment, parent in families[:2]:
        filed.append((await _file(client, parent, enrollment)).json())
    assert await _bursts(engine, world.institution_id) == []
    enrollment, parent = families[2]
    filed.append((await _file(client, parent, enrollment)).json())
    [alert] = await _bursts(engine, world.institution_id)
    assert (alert.level, alert.closed_at) == ("YELLOW", None)
    assert "3 open complaints" in alert.reason
    assert await _level(client, world) == "YELLOW"

    # A fourth while it is open raises nothing more.
    filed.append((await _file(client, parent, enrollment)).json())
    assert len(await _bursts(engine, world.institution_id)) == 1

    regulator = auth(world.regulator_key)
    for complaint in filed[:2]:
        resolved = await client.post(
            f"/v1/regulator/complaints/{complaint['id']}/resolve",
            headers=regulator,
            json={"outcome": "rejected", "note": "checked"},
        )
        assert resolved.status_code == 200, resolved.text
    [closed] = await _bursts(engine, world.institution_id)
    assert closed.closed_at is not None
    assert await _level(client, world) == "GREEN"

    # A new burst is a new alert.
    filed.append((await _file(client, parent, enrollment)).json())
    bursts = await _bursts(engine, world.institution_id)
    assert len(bursts) == 2
    assert [a.closed_at is None for a in sorted(bursts, key=lambda a: a.opened_at)] == [False, True]


async def _level(client, world) -> str:
    response = await client.get(
        f"/v1/regulator/institutions/{world.institution_id}/balance",
        headers=auth(world.regulator_key),
    )
    assert response.status_code == 200, response.text
    return response.json()["alert_level"]


async def test_a_burst_that_ages_out_of_its_window_closes_at_the_next_evaluation(engine, client):
    world = await make_world(engine, complaint_burst_count=2, complaint_burst_days=7)
    for enrollment, parent in [await _family(engine, world) for _ in range(2)]:
        assert (await _file(client, parent, enrollment)).status_code == 201
    assert await _level(client, world) == "YELLOW"

    async def evaluate(as_of):
        response = await client.post(
            "/v1/admin/jobs/evaluate_alerts",
            headers=auth(world.admin_key),
            json={"as_of": as_of.isoformat()},
        )
        assert response.status_code == 200, response.text

    await evaluate(utcnow() + timedelta(days=3))  # still within the window
    assert await _level(client, world) == "YELLOW"
    await evaluate(utcnow() + timedelta(days=8))
    [aged] = await _bursts(engine, world.institution_id)
    assert aged.closed_at is not None
    assert await _level(client, world) == "GREEN"


@pytest.mark.postgres_only
async def test_complaints_filed_at_once_raise_one_alert(engine, live_client):
    world = await make_world(engine, complaint_burst_count=3)
    families = [await _family(engine, world) for _ in range(6)]
    filed = await asyncio.gather(
        *(_file(live_client, parent, enrollment) for enrollment, parent in families)
    )
    assert [f.status_code for f in filed] == [201] * 6, [f.text for f in filed]
    assert len(await _bursts(engine, world.institution_id)) == 1


@pytest.mark.postgres_only
async def test_two_resolutions_at_once_one_decides(engine, live_client):
    world = await make_world(engine)
    enrollment, parent = await _family(engine, world)
    complaint = (await _file(live_client, parent, enrollment)).json()
    path = f"/v1/regulator/complaints/{complaint['id']}/resolve"
    regulator = auth(world.regulator_key)
    answers = await asyncio.gather(
        *(
            live_client.post(path, headers=regulator, json={"outcome": outcome, "note": "n"})
            for outcome in ("upheld", "rejected")
        )
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    [decided] = [a.json() for a in answers if a.status_code == 200]
    seen = await live_client.get(f"/v1/complaints/{complaint['id']}", headers=parent)
    assert seen.json()["outcome"] == decided["outcome"]


@given(st.integers(0, 1000), st.integers(1, 1000))
def test_the_burst_rule(open_in_window, burst_count):
    assert is_burst(open_in_window, burst_count) == (open_in_window >= burst_count)
    if is_burst(open_in_window, burst_count):
        assert is_burst(open_in_window + 1, burst_count)  # more complaints never end a burst
    assert is_burst(burst_count, burst_count)
