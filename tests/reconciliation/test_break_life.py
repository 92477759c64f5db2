"""A break's life through the API: a day whose statement never came is a run and a break of its
own (job `watch_reconciliation`), a break open more than a day raises one YELLOW alert, and an
operator or the institution's regulator closes a break by hand with a note, which closes its alert.

Days are in October 2026 (a 调休 Saturday, 10-10, and ordinary weekends), for institutions onboarded
then, so the job's moment can be set without touching other tests' institutions, onboarded now."""

import asyncio
import uuid
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select, update

from app.auth.service import issue_key
from app.db.unit import Database
from app.jobs.registry import JOBS
from app.kit.clock import SHANGHAI, utcnow
from app.models import Alert, Institution, ReconciliationBreak, ReconciliationRun
from app.models.api_key import Role
from app.reconciliation import breaks
from bank_simulator.keys import bank_keys
from tests.banks.simulated import simulated_bank
from tests.factories import auth, make_institution, make_jurisdiction, make_key, secret

ONBOARDED = datetime.combine(date(2026, 10, 9), time(8), SHANGHAI)


def shanghai(day: date, hour: int = 0) -> datetime:
    return datetime.combine(day, time(hour), SHANGHAI)


async def _bank(client, admin: dict[str, str], statement_days: str = "daily") -> str:
    slug = f"ums-{uuid.uuid4().hex[:10]}"
    configured = await client.put(
        f"/v1/banks/{slug}",
        headers=admin,
        json={
            "adapter": "ums",
            "base_url": "http://127.0.0.1:9/ums",
            "config": bank_keys("ums").service_config,
            "statements": {"statement_days": statement_days, "due_hours": 12},
        },
    )
    assert configured.status_code == 200, configured.text
    return slug


async def _key(engine, role: Role, **scope: Any) -> tuple[dict[str, str], UUID]:
    """A key's Authorization header and its id (which `closed_by` names)."""

    async def work(session):
        row, key = await issue_key(session, secret(), role=role, name=f"test {role}", **scope)
        return auth(key), row.id

    return await Database(engine).run(work)


async def _job(client, admin: dict[str, str], as_of: datetime) -> int:
    response = await client.post(
        "/v1/admin/jobs/watch_reconciliation", headers=admin, json={"as_of": as_of.isoformat()}
    )
    assert response.status_code == 200, response.text
    return response.json()["handled"]


async def _runs(client, headers: dict[str, str], institution_id) -> list[dict[str, Any]]:
    """The institution's runs, by day."""
    response = await client.get(
        f"/v1/regulator/reconciliations?institution_id={institution_id}&limit=500",
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return sorted(response.json()["items"], key=lambda run: run["statement_date"])


async def _statement(sim, day: date):
    """The bank sends its statement of `day` as the simulator writes and signs it."""
    statement = await sim.bank.get(f"/sim/statements/{sim.slug}/{sim.escrow_account_no}/{day}")
    headers = {
        name: value
        for name, value in statement.headers.items()
        if name.lower() == "content-type" or name.lower().startswith("x-")
    }
    return await sim.service.post(
        f"/v1/banks/{sim.slug}/statements", content=statement.content, headers=headers
    )


async def _alerts(engine, institution_id) -> list[Alert]:
    """The institution's alerts (no endpoint lists them yet)."""

    async def work(session):
        query = select(Alert).where(Alert.institution_id == institution_id)
        return list((await session.scalars(query.order_by(Alert.opened_at))).all())

    return await Database(engine).run(work)


@pytest.fixture
async def setup(engine, client):
    """A daily bank, a jurisdiction with its regulator, and an institution onboarded on
    2026-10-09 at 08:00 (Shanghai)."""
    admin, admin_id = await _key(engine, Role.admin)
    slug = await _bank(client, admin)
    code = await make_jurisdiction(engine)
    school = await make_institution(engine, code, bank_slug=slug, created_at=ONBOARDED)
    regulator, regulator_id = await _key(engine, Role.regulator, jurisdiction_code=code)
    return {
        "admin": admin,
        "admin_id": admin_id,
        "slug": slug,
        "code": code,
        "school": school,
        "regulator": regulator,
        "regulator_id": regulator_id,
    }


async def test_each_owed_day_without_a_statement_gets_one_missing_run_and_break(
    engine, database_url
):
    """The statement of 10-09 came; 10-10 did not; 10-11 is not due yet (12 hours after its end);
    10-08 was before the institution existed."""
    async with simulated_bank(engine, database_url, "ums") as sim:
        await Database(engine).run(
            lambda session: session.execute(
                update(Institution)
                .where(Institution.id == sim.institution_id)
                .values(created_at=ONBOARDED)
            )
        )
        came = await _statement(sim, date(2026, 10, 9))
        assert came.status_code == 200, came.text
        as_of = shanghai(date(2026, 10, 12), 11)

        await sim.run_job("watch_reconciliation", as_of)
        first = await _runs(sim.service, sim.regulator, sim.institution_id)
        await sim.run_job("watch_reconciliation", as_of)
        again = await _runs(sim.service, sim.regulator, sim.institution_id)

        assert [(run["statement_date"], run["status"]) for run in first] == [
            ("2026-10-09", "clean"),
            ("2026-10-10", "missing"),
        ]
        missing = first[1]
        assert (missing["lines"], missing["closing_fen"], missing["account_no"]) == (
            0,
            0,
            sim.escrow_account_no,
        )
        [found] = missing["breaks"]
        assert (found["type"], found["status"], found["opened_by"]) == (
            "statement_missing",
            "open",
            "watch_reconciliation",
        )
        assert "2026-10-10" in found["detail"] and sim.slug in found["detail"]
        assert again == first


async def test_a_bank_owing_working_days_skips_weekends_but_not_a_make_up_saturday(
    engine, client, setup
):
    workdays_bank = await _bank(client, setup["admin"], statement_days="workdays")
    weekdays_only = await make_institution(
        engine, setup["code"], bank_slug=workdays_bank, created_at=ONBOARDED
    )

    await _job(client, setup["admin"], shanghai(date(2026, 10, 20), 6))

    daily = await _runs(client, setup["regulator"], setup["school"].id)
    working = await _runs(client, setup["regulator"], weekdays_only.id)
    assert [run["statement_date"] for run in daily] == [
        (date(2026, 10, 9) + timedelta(days=n)).isoformat() for n in range(10)
    ]
    # 10-10 is a Saturday worked instead of a National Day holiday (调休); 10-11, 10-17 and 10-18
    # are days off.
    assert [run["statement_date"] for run in working] == [
        "2026-10-09",
        "2026-10-10",
        "2026-10-12",
        "2026-10-13",
        "2026-10-14",
        "2026-10-15",
        "2026-10-16",
    ]
    assert all(run["status"] == "missing" and len(run["breaks"]) == 1 for run in working)


async def test_a_break_open_more_than_a_day_raises_one_yellow_alert(engine, client, setup):
    school = setup["school"]
    opened = shanghai(date(2026, 10, 10), 13)  # 10-09 is due: one missing run
    await _job(client, setup["admin"], opened)
    [run] = await _runs(client, setup["regulator"], school.id)
    [found] = run["breaks"]

    await _job(client, setup["admin"], opened + timedelta(hours=23))
    young = await _alerts(engine, school.id)
    await _job(client, setup["admin"], opened + timedelta(hours=25))
    await _job(client, setup["admin"], opened + timedelta(hours=26))
    alerts = await _alerts(engine, school.id)

    assert young == []
    [alert] = alerts  # the breaks the later runs opened are younger than a day
    assert alert.key == breaks.alert_key(UUID(found["id"]))
    assert (alert.kind, alert.level, alert.closed_at) == ("reconciliation_break", "YELLOW", None)
    assert "statement_missing" in alert.reason and "2026-10-09" in alert.reason


async def test_closing_a_break_by_hand_records_who_when_and_why_and_closes_its_alert(
    engine, client, setup
):
    school = setup["school"]
    opened = shanghai(date(2026, 10, 10), 13)
    await _job(client, setup["admin"], opened)
    await _job(client, setup["admin"], opened + timedelta(hours=25))
    listed = await client.get(
        f"/v1/regulator/reconciliations/breaks?institution_id={school.id}&status=open",
        headers=setup["regulator"],
    )
    assert listed.status_code == 200, listed.text
    first, second = listed.json()["items"]  # 10-09, then 10-10 (due by the second run)
    assert (first["institution_id"], first["type"]) == (str(school.id), "statement_missing")
    before = utcnow()

    closed = await client.post(
        f"/v1/regulator/reconciliations/breaks/{first['id']}/close",
        headers=setup["regulator"],
        json={"note": "  银行补发了对账单 (the bank resent it by post)  "},
    )
    again = await client.post(
        f"/v1/regulator/reconciliations/breaks/{first['id']}/close",
        headers=setup["admin"],
        json={"note": "once more"},
    )
    by_operator = await client.post(
        f"/v1/regulator/reconciliations/breaks/{second['id']}/close",
        headers=setup["admin"],
        json={"note": "explained"},
    )

    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert body["status"] == "closed"
    assert body["closed_by"] == f"regulator:{setup['regulator_id']}"
    assert body["close_note"] == "银行补发了对账单 (the bank resent it by post)"
    assert before <= datetime.fromisoformat(body["closed_at"]) <= utcnow()
    [alert] = await _alerts(engine, school.id)
    assert alert.key == breaks.alert_key(UUID(first["id"])) and alert.closed_at is not None
    assert again.status_code == 409, again.text
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["code"] == "break_closed"
    assert by_operator.status_code == 200, by_operator.text
    assert by_operator.json()["closed_by"] == f"admin:{setup['admin_id']}"
    still = await client.get(
        f"/v1/regulator/reconciliations/breaks?institution_id={school.id}&status=closed",
        headers=setup["regulator"],
    )
    assert [(item["id"], item["close_note"]) for item in still.json()["items"]] == [
        (first["id"], "银行补发了对账单 (the bank resent it by post)"),
        (second["id"], "explained"),
    ]


async def test_a_break_is_closed_only_by_the_operator_or_its_own_regulator(engine, client, setup):
    school = setup["school"]
    await _job(client, setup["admin"], shanghai(date(2026, 10, 10), 13))
    [run] = await _runs(client, setup["regulator"], school.id)
    [found] = run["breaks"]
    path = f"/v1/regulator/reconciliations/breaks/{found['id']}/close"
    elsewhere, _ = await _key(
        engine, Role.regulator, jurisdiction_code=await make_jurisdiction(engine)
    )
    institution = auth(await make_key(engine, Role.institution, institution_id=school.id))

    stranger = await client.post(path, headers=elsewhere, json={"note": "not mine"})
    itself = await client.post(path, headers=institution, json={"note": "all fine"})
    unknown = await client.post(
        f"/v1/regulator/reconciliations/breaks/{uuid.uuid4()}/close",
        headers=setup["admin"],
        json={"note": "no such break"},
    )
    hidden = await client.get(
        f"/v1/regulator/reconciliations/breaks?institution_id={school.id}", headers=elsewhere
    )

    assert stranger.status_code == 404 and stranger.json()["code"] == "break_not_found"
    assert itself.status_code == 404, itself.text
    assert unknown.status_code == 404 and unknown.json()["code"] == "break_not_found"
    assert hidden.status_code == 200 and hidden.json()["items"] == []
    [run] = await _runs(client, setup["regulator"], school.id)
    assert run["breaks"][0]["status"] == "open"


@pytest.mark.parametrize(
    "body", [{}, {"note": ""}, {"note": "   "}, {"note": "x" * 501}, {"note": "a\x00b"}]
)
async def test_a_note_is_required_and_bounded(engine, client, setup, body):
    await _job(client, setup["admin"], shanghai(date(2026, 10, 10), 13))
    [run] = await _runs(client, setup["regulator"], setup["school"].id)
    [found] = run["breaks"]

    refused = await client.post(
        f"/v1/regulator/reconciliations/breaks/{found['id']}/close",
        headers=setup["regulator"],
        json=body,
    )

    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "validation_error"
    [run] = await _runs(client, setup["regulator"], setup["school"].id)
    assert run["breaks"][0]["status"] == "open"


async def test_the_statement_of_a_missing_day_closes_that_days_break(engine, client, setup):
    school = setup["school"]
    opened = shanghai(date(2026, 10, 11), 13)  # 10-09 and 10-10 are due
    await _job(client, setup["admin"], opened)
    await _job(client, setup["admin"], opened + timedelta(hours=25))  # and alerts for both
    statement_run = uuid.uuid4()
    now = opened + timedelta(hours=26)

    await Database(engine).run(
        lambda session: breaks.statement_arrived(
            session, school.id, date(2026, 10, 9), statement_run, now
        )
    )

    runs = await _runs(client, setup["regulator"], school.id)
    found = {run["statement_date"]: run["breaks"][0] for run in runs}
    assert found["2026-10-09"]["status"] == "closed"
    assert found["2026-10-09"]["closed_by"] == "statement"
    assert str(statement_run) in found["2026-10-09"]["close_note"]
    assert found["2026-10-10"]["status"] == "open"
    alerts = {alert.key: alert for alert in await _alerts(engine, school.id)}
    assert alerts[breaks.alert_key(UUID(found["2026-10-09"]["id"]))].closed_at is not None
    assert alerts[breaks.alert_key(UUID(found["2026-10-10"]["id"]))].closed_at is None


@pytest.mark.postgres_only
async def test_two_watchers_at_once_open_each_missing_run_once(engine, client, setup):
    as_of = shanghai(date(2026, 10, 15), 13)

    await asyncio.gather(*(JOBS["watch_reconciliation"](Database(engine), as_of) for _ in range(4)))

    rows = await Database(engine).run(
        lambda session: session.execute(
            select(ReconciliationRun.statement_date, ReconciliationBreak.id)
            .join(ReconciliationBreak, ReconciliationBreak.run_id == ReconciliationRun.id)
            .where(ReconciliationRun.institution_id == setup["school"].id)
            .order_by(ReconciliationRun.statement_date)
        )
    )
    assert [row.statement_date for row in rows] == [
        date(2026, 10, 9) + timedelta(days=n) for n in range(6)
    ]


async def test_a_break_a_statement_opened_closes_by_hand_too(engine, database_url):
    """Money at the bank the ledger never saw: the regulator learns why and closes it."""
    async with simulated_bank(engine, database_url, "ums", opening_balance_fen=7_000) as sim:
        enrollment = await sim.enroll(3)
        await sim.pay(enrollment["order_no"], enrollment["amount_fen"])
        run = await _statement(sim, utcnow().astimezone(SHANGHAI).date())
        [found] = run.json()["breaks"]

        closed = await sim.service.post(
            f"/v1/regulator/reconciliations/breaks/{found['id']}/close",
            headers=sim.regulator,
            json={"note": "opening deposit made before onboarding; imported next week"},
        )

        assert found["type"] == "balance_mismatch"
        assert closed.status_code == 200, closed.text
        assert closed.json()["status"] == "closed" and closed.json()["run_id"] == run.json()["id"]
        [listed] = (await _runs(sim.service, sim.regulator, sim.institution_id))[0]["breaks"]
        assert listed["close_note"] == "opening deposit made before onboarding; imported next week"


@pytest.mark.postgres_only
async def test_two_closings_at_once_close_a_break_once(engine, client, setup):
    await _job(client, setup["admin"], shanghai(date(2026, 10, 10), 13))
    [run] = await _runs(client, setup["regulator"], setup["school"].id)
    path = f"/v1/regulator/reconciliations/breaks/{run['breaks'][0]['id']}/close"

    answers = await asyncio.gather(
        *(client.post(path, headers=setup["regulator"], json={"note": f"n{n}"}) for n in range(4))
    )

    assert sorted(answer.status_code for answer in answers) == [200, 409, 409, 409]
    [won] = [answer.json() for answer in answers if answer.status_code == 200]
    [run] = await _runs(client, setup["regulator"], setup["school"].id)
    assert run["breaks"][0]["close_note"] == won["close_note"]
