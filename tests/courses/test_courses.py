"""Courses through the API: one price per lesson, valid dates and category, own institution only."""

from datetime import date

import pytest
from sqlalchemy import func, select

from app.db.unit import Database
from app.models import Course
from app.models.api_key import Role
from tests.factories import auth, make_institution, make_key, make_world

VALID = {
    "name": "Piano for beginners",
    "category": "non_subject",
    "lesson_price_fen": 15_000,
    "starts_on": "2026-03-01",
    "ends_on": "2026-05-31",
}


async def _course_count(engine, institution_id):
    return await Database(engine).run(
        lambda s: s.scalar(
            select(func.count()).select_from(Course).where(Course.institution_id == institution_id)
        )
    )


async def test_an_institution_publishes_a_course_and_reads_it_back(client, engine):
    world = await make_world(engine)
    created = await client.post("/v1/courses", headers=auth(world.institution_key), json=VALID)
    assert created.status_code == 201, created.text
    course = created.json()
    assert {k: course[k] for k in VALID} == VALID
    assert course["institution_id"] == str(world.institution_id)

    read = await client.get(f"/v1/courses/{course['id']}", headers=auth(world.institution_key))
    assert read.status_code == 200
    assert read.json() == course


async def test_a_course_may_start_and_end_on_one_day(client, engine):
    world = await make_world(engine)
    one_day = {**VALID, "starts_on": "2026-03-01", "ends_on": "2026-03-01"}
    response = await client.post("/v1/courses", headers=auth(world.institution_key), json=one_day)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "change",
    [
        {"lesson_price_fen": 0},
        {"lesson_price_fen": -100},
        {"lesson_price_fen": "15000"},
        {"lesson_price_fen": 150.5},
        {"lesson_price_fen": 2**63},
        {"ends_on": "2026-02-28"},
        {"category": "sports"},
        {"name": ""},
        {"discount_pct": 10},
    ],
)
async def test_an_invalid_course_is_refused_and_not_recorded(client, engine, change):
    world = await make_world(engine)
    response = await client.post(
        "/v1/courses", headers=auth(world.institution_key), json={**VALID, **change}
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert await _course_count(engine, world.institution_id) == 0


async def test_only_an_institution_publishes_courses(client, engine):
    world = await make_world(engine)
    response = await client.post("/v1/courses", headers=auth(world.regulator_key), json=VALID)
    assert response.status_code == 404
    assert (await client.post("/v1/courses", json=VALID)).status_code == 401


async def test_another_institution_does_not_see_the_course(client, engine):
    world = await make_world(engine)
    other = await make_institution(engine, world.jurisdiction_code)
    other_key = await make_key(engine, Role.institution, institution_id=other.id)
    course = (
        await client.post("/v1/courses", headers=auth(world.institution_key), json=VALID)
    ).json()

    response = await client.get(f"/v1/courses/{course['id']}", headers=auth(other_key))
    assert response.status_code == 404
    assert response.json()["code"] == "course_not_found"
    unknown = await client.get(
        "/v1/courses/00000000-0000-0000-0000-000000000000", headers=auth(world.institution_key)
    )
    assert unknown.status_code == 404


async def test_dates_are_plain_dates(client, engine):
    world = await make_world(engine)
    response = await client.post("/v1/courses", headers=auth(world.institution_key), json=VALID)
    assert date.fromisoformat(response.json()["starts_on"]) == date(2026, 3, 1)
