"""What an institution can see of its own business, and who else sees it: GET /v1/courses,
GET /v1/payouts and GET /v1/refunds, paginated and scoped (an institution its own, a regulator its
jurisdiction's, the operator all; anyone else 404). Another institution's objects never appear."""

from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from app.kit.clock import utcnow
from app.models.api_key import Role
from tests.factories import (
    World,
    auth,
    make_institution,
    make_key,
    make_paid_enrollment,
    make_world,
)

LISTS = ("/v1/courses", "/v1/payouts", "/v1/refunds")


@dataclass
class Made:
    """The ids of what one institution has, per list."""

    ids: dict[str, set[str]] = field(default_factory=lambda: {path: set() for path in LISTS})


async def _business(engine, client, world: World) -> Made:
    """A course published through the API, a paid enrollment with confirmed lessons, a payout of
    some of them, and the parent's refund request."""
    made = Made()
    institution = auth(world.institution_key)
    today = utcnow().date()
    course = await client.post(
        "/v1/courses",
        headers=institution,
        json={
            "name": "Piano",
            "category": "non_subject",
            "lesson_price_fen": 10_000,
            "starts_on": today.isoformat(),
            "ends_on": (today + timedelta(days=60)).isoformat(),
        },
    )
    assert course.status_code == 201, course.text
    enrollment = await make_paid_enrollment(engine, world, lessons=20, released=5)
    made.ids["/v1/courses"] |= {course.json()["id"], str(enrollment.course_id)}

    payout = await client.post("/v1/payouts", headers=institution, json={"amount_fen": 10_000})
    assert payout.status_code == 201, payout.text
    made.ids["/v1/payouts"].add(payout.json()["id"])

    parent = await make_key(engine, Role.parent, enrollment_id=enrollment.id)
    refund = await client.post(
        f"/v1/enrollments/{enrollment.id}/refunds", headers=auth(parent), json={"reason": "moving"}
    )
    assert refund.status_code == 201, refund.text
    made.ids["/v1/refunds"].add(refund.json()["id"])
    return made


async def _everything(client, path: str, key: str, **query: str) -> list[dict]:
    """Every item of the list, page after page."""
    items: list[dict] = []
    params: dict[str, str] = {"limit": "500", **query}
    while True:
        response = await client.get(path, headers=auth(key), params=params)
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        if response.json()["next_cursor"] is None:
            return items
        params["cursor"] = response.json()["next_cursor"]


def _ids(items: list[dict]) -> set[str]:
    return {item["id"] for item in items}


@dataclass
class Three:
    a: World
    other: World
    made_a: Made
    made_neighbour: Made
    made_other: Made


@pytest.fixture
async def three(engine, client) -> Three:
    """Institutions `a` and `neighbour` in one jurisdiction, `other` in another, each with its
    business."""
    a = await make_world(engine, release_lag_days=0)
    neighbour_institution = await make_institution(engine, a.jurisdiction_code)
    neighbour = World(
        jurisdiction_code=a.jurisdiction_code,
        institution_id=neighbour_institution.id,
        escrow_account_no=neighbour_institution.escrow_account_no,
        institution_key=await make_key(
            engine, Role.institution, institution_id=neighbour_institution.id
        ),
        regulator_key=a.regulator_key,
        admin_key=a.admin_key,
    )
    other = await make_world(engine, release_lag_days=0)
    made = [await _business(engine, client, world) for world in (a, neighbour, other)]
    return Three(a, other, *made)


@pytest.mark.parametrize("path", LISTS)
async def test_an_institution_sees_its_own_and_never_anothers(client, three, path):
    a, other = three.a, three.other

    mine = await _everything(client, path, a.institution_key)
    assert _ids(mine) == three.made_a.ids[path]
    assert {item["institution_id"] for item in mine} == {str(a.institution_id)}

    # Asking for another institution's objects by name finds nothing either.
    asked = await _everything(
        client, path, a.institution_key, institution_id=str(other.institution_id)
    )
    assert asked == []


@pytest.mark.parametrize("path", LISTS)
async def test_a_regulator_sees_its_jurisdiction_and_the_operator_all(client, three, path):
    a, other = three.a, three.other
    jurisdiction = three.made_a.ids[path] | three.made_neighbour.ids[path]

    assert _ids(await _everything(client, path, a.regulator_key)) == jurisdiction
    elsewhere = await _everything(
        client, path, a.regulator_key, institution_id=str(other.institution_id)
    )
    assert elsewhere == []

    everything = _ids(await _everything(client, path, a.admin_key))
    assert jurisdiction | three.made_other.ids[path] <= everything
    one = await _everything(client, path, a.admin_key, institution_id=str(other.institution_id))
    assert _ids(one) == three.made_other.ids[path]


async def test_a_parent_or_a_bank_gets_404_and_no_key_401(engine, client):
    world = await make_world(engine)
    enrollment = await make_paid_enrollment(engine, world)
    parent = await make_key(engine, Role.parent, enrollment_id=enrollment.id)
    bank = await make_key(engine, Role.bank, bank_slug="ums")
    for path in LISTS:
        for key in (parent, bank):
            response = await client.get(path, headers=auth(key))
            assert response.status_code == 404, (path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
        assert (await client.get(path)).status_code == 401


async def test_lists_page_with_a_cursor(engine, client):
    world = await make_world(engine, release_lag_days=0)
    made = await _business(engine, client, world)

    first = await client.get("/v1/courses?limit=1", headers=auth(world.institution_key))
    assert first.status_code == 200 and len(first.json()["items"]) == 1
    cursor = first.json()["next_cursor"]
    assert cursor is not None
    second = await client.get(
        "/v1/courses", params={"limit": 1, "cursor": cursor}, headers=auth(world.institution_key)
    )
    assert second.json()["next_cursor"] is None
    assert _ids(first.json()["items"]) | _ids(second.json()["items"]) == made.ids["/v1/courses"]


async def test_refunds_filter_by_status(engine, client):
    world = await make_world(engine, release_lag_days=0)
    made = await _business(engine, client, world)
    (refund_id,) = made.ids["/v1/refunds"]
    institution = world.institution_key

    requested = await _everything(client, "/v1/refunds", institution, status="requested")
    assert _ids(requested) == {refund_id}
    assert requested[0]["amount_fen"] > 0 and requested[0]["respond_by"]
    assert await _everything(client, "/v1/refunds", institution, status="approved") == []

    answered = await client.post(f"/v1/refunds/{refund_id}/approve", headers=auth(institution))
    assert answered.status_code == 200, answered.text
    assert await _everything(client, "/v1/refunds", institution, status="requested") == []

    bad = await client.get("/v1/refunds?status=lost", headers=auth(institution))
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"


async def test_payouts_show_their_status(engine, client):
    world = await make_world(engine, release_lag_days=0)
    made = await _business(engine, client, world)
    (payout,) = await _everything(client, "/v1/payouts", world.institution_key, status="pending")
    assert payout["id"] in made.ids["/v1/payouts"] and payout["amount_fen"] == 10_000
    assert await _everything(client, "/v1/payouts", world.institution_key, status="settled") == []
