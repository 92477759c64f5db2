"""Scope, for every route that takes an object id: another institution's key, another enrollment's
parent and another jurisdiction's regulator get 404, and nothing changes."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
import time_machine

from app.db.unit import Database
from app.kit.clock import utcnow
from app.models import ReconciliationBreak, ReconciliationRun
from app.models.api_key import Role
from app.payments.service import BankPayment, credit_payment
from tests.factories import auth, make_course, make_key, make_world

BODIES = {  # a valid body for each route that needs one, so that only scope can refuse it
    "/refunds": {"reason": "moving"},
    "/reject": {"reason": "no"},
    "/dispute": {"reason": "absent"},
    "{complaint_id}/resolve": {"outcome": "rejected", "note": "scope probe"},
    "/resolve": {"in_favor_of": "parent"},
    "/wind-down": {"reason": "scope probe"},
    "/freeze": {"reason": "audit"},
    "/unfreeze": {"reason": "audit"},
    "/list": {"list_status": "white", "reason": "audit"},
    "/profile": {},
    "/lessons": {"lesson_key": "scope-probe", "occurred_at": None, "count": 1},
    "/jobs/{job}": {},
    "/close": {"note": "scope probe"},
    "/floor": {"min_balance_floor_fen": 0},
}


async def _world_with_everything(engine, client) -> tuple[Any, dict[str, str], dict[str, str]]:
    world = await make_world(engine, release_lag_days=0)
    institution = auth(world.institution_key)
    # Enrolled and paid two hours ago (the clock moved back, not the data), so the lessons below
    # may be given an hour ago.
    with time_machine.travel(utcnow() - timedelta(hours=2), tick=True):
        today = utcnow().date()
        course = await make_course(
            engine,
            world.institution_id,
            10_000,
            starts_on=today,
            ends_on=today + timedelta(days=60),
        )
        enrollment = (
            await client.post(
                "/v1/enrollments",
                headers=institution,
                json={
                    "course_id": str(course.id),
                    "student": {"name": "A", "id_number": "110105201501010017"},
                    "payer": {"name": "P", "phone": "13800138000"},
                    "lessons": 5,
                    "loan_funded": False,
                },
            )
        ).json()
        payment = BankPayment(
            bank_slug="ums",
            bank_reference=f"scope-{enrollment['id']}",
            escrow_account_no=world.escrow_account_no,
            order_no=enrollment["order_no"],
            amount_fen=enrollment["amount_fen"],
            paid_at=utcnow(),
        )
        await Database(engine).run(lambda session: credit_payment(session, payment))
    parent = auth(enrollment["parent_key"])
    lessons = []
    for n in range(2):
        lessons.append(
            (
                await client.post(
                    f"/v1/enrollments/{enrollment['id']}/lessons",
                    headers=institution,
                    json={
                        "lesson_key": f"L{n}",
                        "occurred_at": (utcnow() - timedelta(hours=1)).isoformat(),
                        "count": 1,
                    },
                )
            ).json()
        )
    await client.post(f"/v1/lessons/{lessons[0]['id']}/confirm", headers=parent)
    payout = (await client.post("/v1/payouts", headers=institution, json={})).json()
    refund = (
        await client.post(
            f"/v1/enrollments/{enrollment['id']}/refunds", headers=parent, json={"reason": "r"}
        )
    ).json()
    key = (
        await client.post(
            "/v1/api-keys",
            headers=auth(world.admin_key),
            json={
                "role": "institution",
                "name": "second",
                "institution_id": str(world.institution_id),
            },
        )
    ).json()
    complaint = (
        await client.post(
            "/v1/complaints",
            headers=parent,
            json={"enrollment_id": enrollment["id"], "category": "other", "text": "probe"},
        )
    ).json()
    found = await _break(engine, world.institution_id, world.escrow_account_no)
    ids = {
        "institution_id": str(world.institution_id),
        "break_id": str(found),
        "code": world.jurisdiction_code,
        "course_id": str(course.id),
        "enrollment_id": enrollment["id"],
        "lesson_id": lessons[1]["id"],
        "payout_id": payout["id"],
        "refund_id": refund["id"],
        "complaint_id": complaint["id"],
        "key_id": key["id"],
        "job": "release_payouts",
        # Bank routes: configuring is for the operator alone; a bank's callbacks authenticate by
        # the bank's signature instead of a key (tests/banks/test_inbox.py).
        "slug": "no-such-bank",
        "message_id": str(uuid.uuid4()),
    }
    return world, ids, parent


async def _break(engine, institution_id: uuid.UUID, account_no: str) -> uuid.UUID:
    """An open reconciliation break of the institution, as a statement would have opened it."""
    now = utcnow()
    run_id, break_id = uuid.uuid4(), uuid.uuid4()

    async def work(session):
        session.add(
            ReconciliationRun(
                institution_id=institution_id,
                id=run_id,
                bank_slug="ums",
                account_no=account_no,
                statement_date=now.date(),
                status="breaks",
                lines=0,
                opening_fen=0,
                closing_fen=1,
                credits_fen=0,
                debits_fen=0,
                ledger_balance_fen=0,
                created_at=now,
            )
        )
        session.add(
            ReconciliationBreak(
                institution_id=institution_id,
                id=break_id,
                run_id=run_id,
                type="balance_mismatch",
                status="open",
                amount_fen=1,
                expected_fen=0,
                detail="scope probe",
                opened_at=now,
                opened_by="statement",
            )
        )

    await Database(engine).run(work)
    return break_id


async def _snapshot(client, world, ids, parent) -> list[Any]:
    institution = auth(world.institution_key)
    admin = auth(world.admin_key)
    return [
        (
            await client.get(
                f"/v1/institutions/{ids['institution_id']}/balance", headers=institution
            )
        ).json(),
        (await client.get(f"/v1/institutions/{ids['institution_id']}", headers=institution)).json(),
        (await client.get(f"/v1/enrollments/{ids['enrollment_id']}", headers=parent)).json(),
        (await client.get(f"/v1/lessons/{ids['lesson_id']}", headers=parent)).json(),
        (await client.get(f"/v1/refunds/{ids['refund_id']}", headers=parent)).json(),
        (await client.get(f"/v1/complaints/{ids['complaint_id']}", headers=parent)).json(),
        (  # never wound down: 404 before and after
            await client.get(
                f"/v1/regulator/institutions/{ids['institution_id']}/wind-down", headers=admin
            )
        ).status_code,
        (await client.get(f"/v1/jurisdictions/{ids['code']}", headers=admin)).json(),
        (await client.get("/v1/api-keys?limit=500", headers=admin)).status_code,
        (
            await client.get(
                f"/v1/regulator/reconciliations/breaks?institution_id={ids['institution_id']}",
                headers=admin,
            )
        ).json(),
    ]


# Exports take a kind, not an object: each caller exports its own scope (tests/exports).
NOT_OBJECT_ROUTES = {"/v1/regulator/exports/{what}.{fmt}"}


def _routes(app) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if "{" in path and path not in NOT_OBJECT_ROUTES
        for method in operations
    ]


def _body(path: str) -> Any:
    for suffix, body in BODIES.items():
        if path.endswith(suffix):
            if body.get("occurred_at", 1) is None:
                return body | {"occurred_at": (utcnow() - timedelta(hours=1)).isoformat()}
            return body
    return None


async def test_outsiders_get_404_on_every_object_route(engine, client, app):
    world, ids, parent = await _world_with_everything(engine, client)
    other = await make_world(engine)
    outsiders = {
        "another institution": auth(other.institution_key),
        "another enrollment's parent": auth(
            await make_key(engine, Role.parent, enrollment_id=other.institution_id)
        ),
        "another jurisdiction's regulator": auth(other.regulator_key),
    }
    before = await _snapshot(client, world, ids, parent)
    routes = _routes(app)
    assert len(routes) >= 20

    failures = []
    for method, template in routes:
        path = template.format(**ids)
        for who, headers in outsiders.items():
            response = await client.request(method, path, headers=headers, json=_body(template))
            if response.status_code != 404 or not response.headers["content-type"].startswith(
                "application/problem+json"
            ):
                failures.append(
                    f"{who}: {method} {template} -> {response.status_code} {response.text[:120]}"
                )
    assert failures == []
    assert await _snapshot(client, world, ids, parent) == before


@pytest.mark.parametrize("who", ["institution", "parent"])
async def test_the_owner_is_not_refused_by_the_same_probe(engine, client, who):
    """The probe above would find a route that answers 404 to everyone: the owners get through."""
    world, ids, parent = await _world_with_everything(engine, client)
    headers = auth(world.institution_key) if who == "institution" else parent
    path = f"/v1/enrollments/{ids['enrollment_id']}"
    assert (await client.get(path, headers=headers)).status_code == 200
