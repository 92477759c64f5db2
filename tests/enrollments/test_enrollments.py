"""Enrollments through the API: the prepay cap to its boundaries, the renewal window, refusals that
write nothing, the parent's key, scope, and the identity number never shown or logged in full."""

import asyncio
import logging
import re
from datetime import timedelta

import pytest
from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select, update

from app.db.unit import Database
from app.kit.clock import utcnow
from app.ledger import service as ledger
from app.models import ApiKey, Enrollment, Institution
from app.models.api_key import Role
from tests.enrollments.helpers import (
    enroll,
    enrolled,
    make_course,
    pay,
    today,
    valid_id_number,
)
from tests.factories import auth, make_institution, make_key, make_world


async def _written(engine, institution_id):
    """What an enrollment writes: enrollment rows, parent keys and ledger accounts."""

    async def work(session):
        enrollments = await session.scalar(
            select(func.count())
            .select_from(Enrollment)
            .where(Enrollment.institution_id == institution_id)
        )
        keys = await session.scalar(
            select(func.count())
            .select_from(ApiKey)
            .join(Enrollment, Enrollment.id == ApiKey.enrollment_id)
            .where(Enrollment.institution_id == institution_id)
        )
        accounts = len(await ledger.accounts(await session.connection(), institution_id))
        return enrollments, keys, accounts

    return await Database(engine).run(work)


async def _lessons(client, world, enrollment, count: int, confirmed: int) -> None:
    """`count` lessons given now (after the payment), the first `confirmed` confirmed by the
    parent: the enrollment's counters as the service keeps them."""
    recorded = await client.post(
        "/v1/lessons/batch",
        headers=auth(world.institution_key),
        json={
            "items": [
                {
                    "enrollment_id": enrollment["id"],
                    "lesson_key": f"{enrollment['id']}-{n}",
                    "occurred_at": utcnow().isoformat(),
                    "count": 1,
                }
                for n in range(count)
            ]
        },
    )
    results = recorded.json()["results"]
    assert [r["status"] for r in results] == ["accepted"] * count, results
    for result in results[:confirmed]:
        response = await client.post(
            f"/v1/lessons/{result['id']}/confirm", headers=auth(enrollment["parent_key"])
        )
        assert response.status_code == 200, response.text


async def _set_institution(engine, institution_id, **values):
    await Database(engine).run(
        lambda s: s.execute(
            update(Institution).where(Institution.id == institution_id).values(**values)
        )
    )


async def test_an_enrollment_awaits_payment_with_an_order_and_a_parent_key(client, engine):
    world = await make_world(engine, unpaid_enrollment_expiry_minutes=90)
    course = await make_course(client, world, lesson_price_fen=15_000)
    id_number = valid_id_number()
    before = utcnow()
    created = await enrolled(client, world, course["id"], 12, id_number=id_number)

    assert created["status"] == "awaiting_payment"
    assert created["amount_fen"] == 12 * 15_000
    assert created["lessons"] == 12
    assert created["paid_fen"] == created["unconsumed_fen"] == created["refundable_fen"] == 0
    assert created["lessons_consumed"] == created["lessons_pending"] == 0
    assert re.fullmatch(r"[A-Za-z0-9]{1,32}", created["order_no"])
    assert created["student"] == {
        "name": "Li Xiaoming",
        "id_number_masked": id_number[:3] + "*" * 11 + id_number[-4:],
    }
    assert created["payer"] == {"name": "Li Hua", "phone": "13800138000"}
    expires_at = created["expires_at"]
    assert before + timedelta(minutes=90) <= utcnow().fromisoformat(expires_at)
    assert utcnow().fromisoformat(expires_at) <= utcnow() + timedelta(minutes=90)

    read = await client.get(f"/v1/enrollments/{created['id']}", headers=auth(world.institution_key))
    assert read.status_code == 200
    assert read.json() == {k: v for k, v in created.items() if k != "parent_key"}
    by_parent = await client.get(
        f"/v1/enrollments/{created['id']}", headers=auth(created["parent_key"])
    )
    assert by_parent.status_code == 200
    assert by_parent.json() == read.json()
    # The order's prepaid account is open, so the bank's payment can be credited to it.
    assert (await pay(engine, world, created)).result == "credited"


async def test_order_numbers_are_unique(client, engine):
    world = await make_world(engine)
    course = await make_course(client, world, lesson_price_fen=1_000)
    orders = {(await enrolled(client, world, course["id"], 1))["order_no"] for _ in range(5)}
    assert len(orders) == 5


async def test_the_identity_number_is_never_returned_nor_logged(client, engine, caplog):
    caplog.set_level(logging.DEBUG)
    world = await make_world(engine)
    course = await make_course(client, world)
    id_number = valid_id_number()
    wrong_check = id_number[:-1] + ("0" if id_number[-1] != "0" else "1")
    responses = [
        await enroll(client, world, course["id"], 10, id_number=id_number),
        await enroll(client, world, course["id"], 100, id_number=id_number),  # over the cap
        await enroll(client, world, course["id"], 10, id_number=wrong_check),
    ]
    created = responses[0].json()
    responses.append(
        await client.get(f"/v1/enrollments/{created['id']}", headers=auth(world.institution_key))
    )
    responses.append(await client.get("/v1/enrollments", headers=auth(world.institution_key)))
    assert [r.status_code for r in responses] == [201, 422, 422, 200, 200]
    for response in responses:
        assert id_number not in response.text
        assert wrong_check not in response.text
        assert id_number[6:14] not in response.text  # not even the birth date
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    assert "/v1/enrollments" in logged  # the requests were logged...
    assert id_number not in logged and wrong_check not in logged  # ...without the number


async def test_an_invalid_identity_number_is_refused_and_nothing_written(client, engine):
    world = await make_world(engine)
    course = await make_course(client, world)
    good = valid_id_number()
    before = await _written(engine, world.institution_id)
    for bad in [good[:-1] + ("0" if good[-1] != "0" else "1"), good[:17], "11010520151301001X", ""]:
        response = await enroll(client, world, course["id"], 10, id_number=bad)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid_id_number"
    assert await _written(engine, world.institution_id) == before


async def test_lesson_cap_60_allowed_61_refused(client, engine):
    world = await make_world(engine)
    course = await make_course(client, world, lesson_price_fen=100)
    assert (await enroll(client, world, course["id"], 60)).status_code == 201
    before = await _written(engine, world.institution_id)

    refused = await enroll(client, world, course["id"], 61)
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["code"] == "prepay_cap_exceeded"
    assert problem["violations"] == [
        {
            "cap": "max_prepaid_lessons",
            "limit": 60,
            "outstanding": 0,
            "requested": 61,
            "total": 61,
        }
    ]
    assert await _written(engine, world.institution_id) == before


async def test_the_lesson_cap_counts_what_the_student_has_unconsumed(client, engine):
    world = await make_world(engine)
    course = await make_course(client, world, lesson_price_fen=100)
    student = valid_id_number()
    await enrolled(client, world, course["id"], 40, id_number=student)  # awaiting payment

    refused = await enroll(client, world, course["id"], 21, id_number=student)
    assert refused.status_code == 422
    [violation] = refused.json()["violations"]
    assert (violation["outstanding"], violation["total"]) == (40, 61)
    assert (await enroll(client, world, course["id"], 20, id_number=student)).status_code == 201
    # Another student, and the same student in another course, have caps of their own.
    assert (await enroll(client, world, course["id"], 60)).status_code == 201
    other_course = await make_course(client, world, lesson_price_fen=100)
    assert (
        await enroll(client, world, other_course["id"], 60, id_number=student)
    ).status_code == 201


async def test_amount_cap_500000_allowed_500001_refused(client, engine):
    world = await make_world(engine)
    at_cap = await make_course(client, world, lesson_price_fen=10_000)
    assert (await enroll(client, world, at_cap["id"], 50)).status_code == 201
    one_fen_over = await make_course(client, world, lesson_price_fen=500_001)
    before = await _written(engine, world.institution_id)

    refused = await enroll(client, world, one_fen_over["id"], 1)
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["code"] == "prepay_cap_exceeded"
    assert problem["violations"] == [
        {
            "cap": "max_prepaid_amount_fen",
            "limit": 500_000,
            "outstanding": 0,
            "requested": 500_001,
            "total": 500_001,
        }
    ]
    assert await _written(engine, world.institution_id) == before


async def test_the_amount_cap_counts_unconsumed_money_less_confirmed_and_refunded(client, engine):
    world = await make_world(engine)
    course = await make_course(client, world, lesson_price_fen=20_000)
    student = valid_id_number()
    first = await enrolled(client, world, course["id"], 20, id_number=student)
    await pay(engine, world, first)
    # Of 400,000: 5 lessons released (100,000), 5 pending, and the rest refunded (200,000, on its
    # way): 100,000 fen and 15 lessons still unconsumed.
    await _lessons(client, world, first, 10, confirmed=5)
    refund = await client.post(
        f"/v1/enrollments/{first['id']}/refunds",
        headers=auth(first["parent_key"]),
        json={"reason": "fewer lessons"},
    )
    approved = await client.post(
        f"/v1/refunds/{refund.json()['id']}/approve", headers=auth(world.institution_key)
    )
    assert approved.json()["amount_fen"] == 200_000, approved.text
    refused = await enroll(client, world, course["id"], 21, id_number=student)
    assert refused.status_code == 422
    [violation] = refused.json()["violations"]
    assert violation["cap"] == "max_prepaid_amount_fen"
    assert (violation["outstanding"], violation["total"]) == (100_000, 520_000)
    assert (await enroll(client, world, course["id"], 20, id_number=student)).status_code == 201


async def test_the_paid_span_is_three_months_at_most_one_day_more_refused(client, engine):
    world = await make_world(engine)
    starts_on = today() + timedelta(days=10)
    three_months = starts_on + relativedelta(months=3)
    course = await make_course(client, world, 100, starts_on, starts_on + relativedelta(years=1))
    ok = await enroll(client, world, course["id"], 10, valid_until=three_months.isoformat())
    assert ok.status_code == 201, ok.text
    assert (ok.json()["valid_from"], ok.json()["valid_until"]) == (
        starts_on.isoformat(),
        three_months.isoformat(),
    )
    before = await _written(engine, world.institution_id)

    one_day_more = (three_months + timedelta(days=1)).isoformat()
    refused = await enroll(client, world, course["id"], 10, valid_until=one_day_more)
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["code"] == "prepay_cap_exceeded"
    assert problem["violations"] == [
        {
            "cap": "max_prepaid_months",
            "limit": 3,
            "covers_from": starts_on.isoformat(),
            "covers_until": one_day_more,
            "latest_allowed_end": three_months.isoformat(),
        }
    ]
    assert await _written(engine, world.institution_id) == before


async def test_a_year_long_course_is_sold_three_months_at_a_time(client, engine):
    """The months cap is on the span one payment covers, not on the course: by default the
    enrollment covers the course up to `max_prepaid_months`, and the next payment (a renewal)
    covers the following months."""
    world = await make_world(engine)
    year = await make_course(client, world, 100, today(), today() + relativedelta(years=1))
    student = valid_id_number()
    first = await enrolled(client, world, year["id"], 10, id_number=student)
    assert (first["valid_from"], first["valid_until"]) == (
        today().isoformat(),
        (today() + relativedelta(months=3)).isoformat(),
    )
    later_from = today() + relativedelta(months=3, days=1)
    later = await enrolled(
        client, world, year["id"], 10, id_number=student, valid_from=later_from.isoformat()
    )
    assert (later["valid_from"], later["valid_until"]) == (
        later_from.isoformat(),
        (later_from + relativedelta(months=3)).isoformat(),
    )
    short = await make_course(client, world, 100, today(), today() + timedelta(days=20))
    whole = await enrolled(client, world, short["id"], 10)
    assert (whole["valid_from"], whole["valid_until"]) == (
        today().isoformat(),
        (today() + timedelta(days=20)).isoformat(),
    )
    seen = await client.get(f"/v1/enrollments/{later['id']}", headers=auth(world.institution_key))
    assert (seen.json()["valid_from"], seen.json()["valid_until"]) == (
        later["valid_from"],
        later["valid_until"],
    )


@pytest.mark.parametrize(
    ("valid_from", "valid_until"),
    [
        (-1, None),  # before today
        (0, 200),  # past the course's end
        (5, 4),  # ends before it starts (a validation error)
    ],
)
async def test_a_span_outside_the_course_or_before_today_is_refused(
    client, engine, valid_from, valid_until
):
    world = await make_world(engine)
    course = await make_course(client, world, 100, today() - timedelta(days=3))
    before = await _written(engine, world.institution_id)
    span = {"valid_from": (today() + timedelta(days=valid_from)).isoformat()}
    if valid_until is not None:
        span["valid_until"] = (today() + timedelta(days=valid_until)).isoformat()

    refused = await enroll(client, world, course["id"], 10, **span)

    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] in {"invalid_validity", "validation_error"}
    assert await _written(engine, world.institution_id) == before


async def test_the_months_of_a_running_course_count_from_today(client, engine):
    world = await make_world(engine)
    started = today() - timedelta(days=40)
    running = await make_course(client, world, 100, started, today() + relativedelta(months=3))
    assert (await enroll(client, world, running["id"], 10)).status_code == 201
    ended = await make_course(client, world, 100, started, today() - timedelta(days=1))
    refused = await enroll(client, world, ended["id"], 10)
    assert refused.status_code == 422
    assert refused.json()["code"] == "course_ended"


async def test_every_limit_broken_is_listed(client, engine):
    world = await make_world(engine, max_prepaid_months=1)
    course = await make_course(client, world, 10_000)  # three months long
    until = (today() + relativedelta(months=2)).isoformat()
    refused = await enroll(client, world, course["id"], 61, valid_until=until)
    assert refused.status_code == 422
    assert [v["cap"] for v in refused.json()["violations"]] == [
        "max_prepaid_lessons",
        "max_prepaid_amount_fen",
        "max_prepaid_months",
    ]


@pytest.mark.parametrize(("confirmed", "status"), [(20, 201), (19, 422)])
async def test_renewal_opens_at_20_lessons_remaining(client, engine, confirmed, status):
    world = await make_world(engine)
    course = await make_course(client, world, lesson_price_fen=1_000)
    student = valid_id_number()
    first = await enrolled(client, world, course["id"], 40, id_number=student)
    await pay(engine, world, first)
    await _lessons(client, world, first, confirmed, confirmed=confirmed)
    before = await _written(engine, world.institution_id)

    renewal = await enroll(client, world, course["id"], 10, id_number=student)
    assert renewal.status_code == status, renewal.text
    if status == 422:
        problem = renewal.json()
        assert problem["code"] == "renewal_too_early"
        assert problem["remaining_lessons"] == 21
        assert problem["renewal_min_remaining_lessons"] == 20
        assert await _written(engine, world.institution_id) == before


async def test_a_loan_funded_payment_is_refused(client, engine):
    world = await make_world(engine)
    course = await make_course(client, world)
    before = await _written(engine, world.institution_id)
    response = await enroll(client, world, course["id"], 10, loan_funded=True)
    assert response.status_code == 422
    assert response.json()["code"] == "loan_funded_payment"
    assert await _written(engine, world.institution_id) == before


@pytest.mark.parametrize(
    "state",
    [
        {"status": "frozen"},
        {"status": "revoked"},
        {"list_status": "black"},
        {"alert_level": "RED"},
        {"alert_level": "FROZEN"},
    ],
)
async def test_a_frozen_or_blacklisted_institution_may_not_enroll(client, engine, state):
    world = await make_world(engine)
    course = await make_course(client, world)
    await _set_institution(engine, world.institution_id, **state)
    before = await _written(engine, world.institution_id)
    response = await enroll(client, world, course["id"], 10)
    assert response.status_code == 409
    assert response.json()["code"] == "institution_frozen"
    assert await _written(engine, world.institution_id) == before


async def test_a_yellow_or_whitelisted_institution_still_enrolls(client, engine):
    world = await make_world(engine)
    course = await make_course(client, world)
    await _set_institution(engine, world.institution_id, alert_level="YELLOW", list_status="white")
    assert (await enroll(client, world, course["id"], 10)).status_code == 201


@pytest.mark.parametrize(
    "change",
    [
        {"lessons": 0},
        {"lessons": "10"},
        {"lessons": 10.0},
        {"loan_funded": "no"},
        {"payer": {"name": "Li Hua", "phone": "call me"}},
        {"student": {"name": "", "id_number": "110105201501010015"}},
        {"course_id": "not-a-uuid"},
        {"coupon": "HALF"},
    ],
)
async def test_an_invalid_payload_is_refused(client, engine, change):
    world = await make_world(engine)
    course = await make_course(client, world)
    response = await client.post(
        "/v1/enrollments",
        headers=auth(world.institution_key),
        json={
            "course_id": course["id"],
            "student": {"name": "Li", "id_number": valid_id_number()},
            "payer": {"name": "Li Hua", "phone": "13800138000"},
            "lessons": 10,
            **change,
        },
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_a_course_of_another_institution_is_not_found(client, engine):
    world = await make_world(engine)
    other = await make_world(engine)
    their_course = await make_course(client, other)
    response = await enroll(client, world, their_course["id"], 10)
    assert response.status_code == 404
    assert response.json()["code"] == "course_not_found"
    assert (await _written(engine, world.institution_id))[0] == 0


async def test_only_its_institution_and_its_parent_see_an_enrollment(client, engine):
    world = await make_world(engine)
    course = await make_course(client, world)
    mine = await enrolled(client, world, course["id"], 10)
    sibling = await enrolled(client, world, course["id"], 10)
    other = await make_institution(engine, world.jurisdiction_code)
    other_key = await make_key(engine, Role.institution, institution_id=other.id)
    other_regulator = await make_key(
        engine, Role.regulator, jurisdiction_code=(await make_world(engine)).jurisdiction_code
    )

    for key in (other_key, sibling["parent_key"], other_regulator):
        response = await client.get(f"/v1/enrollments/{mine['id']}", headers=auth(key))
        assert response.status_code == 404
        assert response.json()["code"] in {"enrollment_not_found", "not_found"}
    assert (await client.get(f"/v1/enrollments/{mine['id']}")).status_code == 401
    # A parent key cannot enroll, nor list the institution's enrollments.
    parent = auth(mine["parent_key"])
    assert (await client.get("/v1/enrollments", headers=parent)).status_code == 404
    assert (
        await client.post("/v1/enrollments", headers=parent, json={"course_id": course["id"]})
    ).status_code == 404


async def test_the_list_pages_and_filters(client, engine):
    world = await make_world(engine)
    course = await make_course(client, world, lesson_price_fen=100)
    made = [await enrolled(client, world, course["id"], 1) for _ in range(5)]
    await pay(engine, world, made[1])
    await pay(engine, world, made[3])
    headers = auth(world.institution_key)

    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/enrollments", headers=headers, params=params)).json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [e["id"] for e in made]

    active = (
        await client.get("/v1/enrollments", headers=headers, params={"status": "active"})
    ).json()
    assert [item["id"] for item in active["items"]] == [made[1]["id"], made[3]["id"]]
    assert all("parent_key" not in item for item in active["items"])
    bad = await client.get("/v1/enrollments", headers=headers, params={"cursor": "nonsense"})
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_cursor"
    other = await make_world(engine)
    theirs = (await client.get("/v1/enrollments", headers=auth(other.institution_key))).json()
    assert theirs == {"items": [], "next_cursor": None}


async def test_concurrent_enrollments_of_one_student_cannot_both_pass_the_cap(client, engine):
    world = await make_world(engine)
    course = await make_course(client, world, lesson_price_fen=100)
    student = valid_id_number()
    responses = await asyncio.gather(
        *(enroll(client, world, course["id"], 40, id_number=student) for _ in range(5))
    )
    assert sorted(r.status_code for r in responses) == [201, 422, 422, 422, 422]
    assert {r.json()["code"] for r in responses if r.status_code == 422} == {"prepay_cap_exceeded"}
