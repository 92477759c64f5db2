"""POST /v1/institutions/{id}/opening-balances: the operator's import over HTTP."""

import uuid

from sqlalchemy import func, select

from app.db.unit import Database
from app.models import Enrollment
from app.models.api_key import Role
from tests.factories import auth, make_key
from tests.opening.helpers import csv_file, first_statement, onboarded, row

CSV = {"Content-Type": "text/csv"}


def path(institution_id) -> str:
    return f"/v1/institutions/{institution_id}/opening-balances"


async def count(engine, institution_id) -> int:
    return await Database(engine).run(
        lambda session: session.scalar(
            select(func.count()).where(Enrollment.institution_id == institution_id)
        )
    )


async def test_the_operator_imports_a_file_and_gets_the_parent_keys_once(engine, client):
    place = await onboarded(engine)
    world = place.world
    await first_statement(engine, world, opening_fen=12_345)
    data = csv_file(row(place.course_id, 12_345, 5))
    admin = {**auth(world.admin_key), **CSV}

    dry = await client.post(
        path(world.institution_id), params={"dry_run": "true"}, content=data, headers=admin
    )
    assert dry.status_code == 200, dry.text
    assert (dry.json()["dry_run"], dry.json()["rows"], dry.json()["enrollments"]) == (True, 1, [])
    assert await count(engine, world.institution_id) == 0

    made = await client.post(path(world.institution_id), content=data, headers=admin)
    assert made.status_code == 201, made.text
    [enrollment] = made.json()["enrollments"]
    assert made.json()["total_fen"] == 12_345 and enrollment["row"] == 2
    shown = await client.get(
        f"/v1/enrollments/{enrollment['enrollment_id']}", headers=auth(enrollment["parent_key"])
    )
    assert shown.status_code == 200 and shown.json()["unconsumed_fen"] == 12_345

    again = await client.post(path(world.institution_id), content=data, headers=admin)
    assert again.status_code == 200, again.text
    assert again.json()["replayed"] and again.json()["enrollments"] == []
    assert again.json()["import_id"] == made.json()["import_id"]
    assert await count(engine, world.institution_id) == 1


async def test_refusals_are_problems_naming_rows_and_figures(engine, client):
    place = await onboarded(engine)
    world = place.world
    admin = {**auth(world.admin_key), **CSV}
    good = csv_file(row(place.course_id, 10_000))

    no_statement = await client.post(path(world.institution_id), content=good, headers=admin)
    assert no_statement.status_code == 409
    assert no_statement.json()["code"] == "no_first_statement"

    await first_statement(engine, world, opening_fen=10_000)
    bad_row = await client.post(
        path(world.institution_id),
        content=csv_file(row(place.course_id, 10_000, amount="1.234")),
        headers=admin,
    )
    assert bad_row.status_code == 422
    assert bad_row.headers["content-type"] == "application/problem+json"
    assert bad_row.json()["code"] == "opening_rows_refused"
    assert [(p["row"], p["column"]) for p in bad_row.json()["problems"]] == [(2, "unconsumed_yuan")]

    short = await client.post(
        path(world.institution_id), content=csv_file(row(place.course_id, 9_999)), headers=admin
    )
    assert short.status_code == 422
    assert (short.json()["code"], short.json()["difference_fen"]) == ("opening_total_disagrees", -1)

    unreadable = await client.post(path(world.institution_id), content=b"\xff\xfe", headers=admin)
    assert unreadable.status_code == 422 and unreadable.json()["code"] == "opening_file_invalid"
    assert await count(engine, world.institution_id) == 0


async def test_only_the_operator_may_import_and_an_unknown_institution_is_404(engine, client):
    place = await onboarded(engine)
    world = place.world
    await first_statement(engine, world, opening_fen=10_000)
    data = csv_file(row(place.course_id, 10_000))

    for key in (world.institution_key, world.regulator_key):
        refused = await client.post(
            path(world.institution_id), content=data, headers={**auth(key), **CSV}
        )
        assert refused.status_code == 404, refused.text
    nobody = await client.post(path(world.institution_id), content=data, headers=CSV)
    assert nobody.status_code == 401
    bank = await make_key(engine, Role.bank, bank_slug="ums")
    assert (
        await client.post(path(world.institution_id), content=data, headers={**auth(bank), **CSV})
    ).status_code == 404
    unknown = await client.post(
        path(uuid.uuid4()), content=data, headers={**auth(world.admin_key), **CSV}
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "institution_not_found"
    assert await count(engine, world.institution_id) == 0
