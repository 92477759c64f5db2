"""Each trigger of the alert engine raised by what really causes it, through the API and the bank
simulator: its effect on payouts and enrollments, and the alert closing by itself when its cause
ends, with every change of the level in the history."""

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.db.unit import Database
from app.kit.clock import utcnow
from app.kit.workdays import local_date
from app.models import Institution, Lesson
from bank_simulator.state import Direction
from tests.alerts.helpers import (
    alerts,
    delivered,
    level,
    level_changes,
    open_kinds,
    paid_enrollment,
    payout,
    set_profile,
)
from tests.banks.simulated import simulated_bank
from tests.reconciliation.test_breaks_acted_on import send, tampered


@pytest.fixture
async def sim(engine, database_url):
    async with simulated_bank(engine, database_url, "ums") as simulated:
        yield simulated


async def _refuse_enrollment(sim) -> dict:
    course = await sim.service.get("/v1/courses", headers=sim.institution)
    refused = await sim.service.post(
        "/v1/enrollments",
        headers=sim.institution,
        json={
            "course_id": course.json()["items"][0]["id"],
            "student": {"name": "Han Meimei", "id_number": "110105201501010033"},
            "payer": {"name": "Han parent", "phone": "13800138001"},
            "lessons": 2,
            "loan_funded": False,
        },
    )
    return refused


async def test_a_floor_breach_suspends_payouts_until_the_top_up(engine, sim):
    await paid_enrollment(sim, 10)  # B = U = 100,000 fen
    await set_profile(sim, min_balance_floor_fen=50_000)  # R = 150,000: U <= B < R

    refused = await payout(sim)

    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["code"] == "payouts_suspended"
    assert (body["alert_level"], body["balance_fen"], body["required_fen"]) == (
        "YELLOW",
        100_000,
        150_000,
    )
    [breach] = await alerts(engine, sim.institution_id)
    assert (breach.kind, breach.level, breach.closed_at) == ("floor_breach", "YELLOW", None)
    assert breach.figures["balance_fen"] == 100_000
    assert breach.figures["required_fen"] == 150_000
    assert "150000 fen" in breach.reason
    assert await level(sim) == "YELLOW"
    listed = await sim.service.get(
        "/v1/regulator/alerts",
        params={"institution_id": str(sim.institution_id), "status": "open"},
        headers=sim.regulator,
    )
    [shown] = listed.json()["items"]
    assert (shown["kind"], shown["figures"]["required_fen"]) == ("floor_breach", 150_000)
    # YELLOW stops payouts only: enrollments go on.
    assert (await sim.enroll(2))["status"] == "awaiting_payment"

    # The institution tops up its own money: the bank's credit names no order (suspense).
    await sim.pay("TOPUP-OWN-FUNDS", 50_000)

    found = await alerts(engine, sim.institution_id)
    assert "floor_breach" not in open_kinds(found)
    assert await level(sim) == "GREEN"
    changes = await level_changes(sim)
    assert [(c["from_level"], c["to_level"]) for c in changes] == [
        ("GREEN", "YELLOW"),
        ("YELLOW", "GREEN"),
    ]
    assert changes[0]["actor"].startswith("institution:")
    assert "floor_breach opened" in changes[0]["cause"]
    assert changes[1]["actor"] == f"bank:{sim.slug}"


async def test_a_shortfall_is_red_refuses_enrollments_but_not_refunds(engine, sim):
    enrollment = await paid_enrollment(sim, 10)
    # The bank's statement says the account holds 60,000 fen less than the ledger (its opening
    # balance is off): B = min(ledger, bank) = 40,000 < U = 100,000.
    await send(sim, *tampered(sim, opening_off=-60_000))

    assert await level(sim) == "RED"
    found = await alerts(engine, sim.institution_id)
    assert "shortfall" in open_kinds(found)
    [shortfall] = [alert for alert in found if alert.kind == "shortfall"]
    assert (shortfall.figures["balance_fen"], shortfall.figures["unconsumed_fen"]) == (
        40_000,
        100_000,
    )
    refused = await _refuse_enrollment(sim)
    assert refused.status_code == 409 and refused.json()["code"] == "institution_frozen"
    assert (await payout(sim)).json()["code"] == "payouts_suspended"

    # Refunds are never blocked: the parent's refund is instructed to the bank at RED.
    refund = await sim.refund_in_full(enrollment)
    assert refund["amount_fen"] == 100_000
    assert [i["amount_fen"] for i in await sim.bank_instructions()] == [100_000]


async def test_a_corrected_statement_ends_the_shortfall(engine, sim):
    await paid_enrollment(sim, 10)
    await send(sim, *tampered(sim, opening_off=-60_000))
    assert await level(sim) == "RED"

    await send(sim, *tampered(sim))  # the bank corrects its statement of the day

    assert "shortfall" not in open_kinds(await alerts(engine, sim.institution_id))
    assert await level(sim) == "GREEN"
    assert [c["to_level"] for c in await level_changes(sim)] == ["RED", "GREEN"]


async def test_money_out_without_an_instruction_is_red(engine, sim):
    await paid_enrollment(sim, 10)
    await send(sim, *tampered(sim, extra=[(Direction.debit, 1_000, "X", "unknown debit")]))

    assert "unauthorized_debit" in open_kinds(await alerts(engine, sim.institution_id))
    assert await level(sim) == "RED"
    assert (await payout(sim)).json()["code"] == "payouts_suspended"


async def test_a_large_payout_and_a_heavy_day_suspend_the_next_until_the_day_is_over(engine, sim):
    await set_profile(sim, large_outflow_fen=30_000, daily_outflow_pct=30)
    enrollment = await paid_enrollment(sim, 10)
    await delivered(sim, enrollment, 5, utcnow() - timedelta(minutes=5))  # 50,000 releasable

    first = await payout(sim, 40_000)  # above 30,000, and 40% of the day's opening 100,000

    assert first.status_code == 201, first.text
    found = await alerts(engine, sim.institution_id)
    assert open_kinds(found) == {"large_outflow", "daily_outflow"}
    [large] = [alert for alert in found if alert.kind == "large_outflow"]
    assert (large.figures["amount_fen"], large.figures["large_outflow_fen"]) == (40_000, 30_000)
    [daily] = [alert for alert in found if alert.kind == "daily_outflow"]
    assert daily.figures["outflows_fen"] == 40_000
    assert daily.figures["opening_balance_fen"] == 0  # the money came today
    second = await payout(sim, 1_000)
    assert second.status_code == 409 and second.json()["code"] == "payouts_suspended"

    # The first evaluation after the day is over closes them.
    tomorrow = utcnow() + timedelta(days=1)
    assert await sim.run_job("evaluate_alerts", tomorrow) >= 1
    assert open_kinds(await alerts(engine, sim.institution_id)) == set()
    assert await level(sim) == "GREEN"
    changes = await level_changes(sim)
    assert [(c["from_level"], c["to_level"]) for c in changes] == [
        ("GREEN", "YELLOW"),
        ("YELLOW", "GREEN"),
    ]
    assert changes[1]["actor"] == "job:evaluate_alerts"


async def test_a_yellow_not_cured_in_time_becomes_red(engine, sim):
    await paid_enrollment(sim, 10)
    await set_profile(sim, min_balance_floor_fen=50_000, topup_deadline_workdays=5)
    now = utcnow()
    await sim.run_job("evaluate_alerts", now)
    assert await level(sim) == "YELLOW"

    # Five working days later it is still YELLOW; a day past the deadline it is RED.
    await sim.run_job("evaluate_alerts", now + timedelta(days=5))
    assert "topup_overdue" not in open_kinds(await alerts(engine, sim.institution_id))
    late = now + timedelta(days=12)
    await sim.run_job("evaluate_alerts", late)
    found = await alerts(engine, sim.institution_id)
    assert open_kinds(found) == {"floor_breach", "topup_overdue"}
    [overdue] = [alert for alert in found if alert.kind == "topup_overdue"]
    assert overdue.level == "RED"
    assert overdue.figures["source_kind"] == "floor_breach"
    assert await level(sim) == "RED"
    refused = await _refuse_enrollment(sim)
    assert refused.json()["code"] == "institution_frozen"

    # The top-up cures the breach, and with it the overdue deadline.
    await sim.pay("TOPUP-OWN-FUNDS", 50_000)
    # (The top-up's own alert, suspense, is informational: it moves no level.)
    assert open_kinds(await alerts(engine, sim.institution_id)) == {"suspense"}
    assert await level(sim) == "GREEN"
    # (Listed by their moments: the job's ran ahead of the clock, so as sets.)
    assert {(c["from_level"], c["to_level"]) for c in await level_changes(sim)} == {
        ("GREEN", "YELLOW"),
        ("YELLOW", "RED"),
        ("RED", "GREEN"),
    }


async def test_a_break_open_more_than_a_day_is_yellow_until_closed(engine, sim):
    await paid_enrollment(sim, 10)
    # A statement listing 1,000 fen the ledger never had: a missing_in_ledger break, opened now.
    await send(sim, *tampered(sim, extra=[(Direction.credit, 1_000, "X", "unknown credit")]))
    assert await level(sim) == "GREEN"

    await sim.run_job("evaluate_alerts", utcnow() + timedelta(days=1, hours=1))

    assert "reconciliation_break" in open_kinds(await alerts(engine, sim.institution_id))
    assert await level(sim) == "YELLOW"
    runs = await sim.service.get(
        f"/v1/regulator/reconciliations?institution_id={sim.institution_id}", headers=sim.regulator
    )
    [open_break] = [
        b for run in runs.json()["items"] for b in run["breaks"] if b["status"] == "open"
    ]
    closed = await sim.service.post(
        f"/v1/regulator/reconciliations/breaks/{open_break['id']}/close",
        headers=sim.regulator,
        json={"note": "the bank's own transfer, confirmed by phone"},
    )
    assert closed.status_code == 200, closed.text

    assert await level(sim) == "GREEN"
    [cured] = [c for c in await level_changes(sim) if c["to_level"] == "GREEN"]
    assert cured["actor"].startswith("regulator:")
    assert "reconciliation break closed" in cured["cause"]


async def test_a_lesson_spike_suspends_payouts_for_the_day(engine, database_url):
    async with simulated_bank(engine, database_url, "ums") as sim:
        await _onboarded_days_ago(engine, sim, 10)
        enrollment = await paid_enrollment(sim, 40)
        await _recorded_back(engine, sim, enrollment, per_day=1, days=9)
        today = utcnow()
        # 9 lessons in the 10 days before: a mean of 0.9 a day; 4 today is above 3 times it.
        await delivered(sim, enrollment, 4, today - timedelta(minutes=1))

        refused = await payout(sim)

        assert refused.json()["code"] == "payouts_suspended"
        [spike] = [a for a in await alerts(engine, sim.institution_id) if a.closed_at is None]
        assert spike.kind == "consumption_spike"
        assert spike.figures == {
            "day": local_date(today).isoformat(),
            "lessons": 4,
            "trailing_lessons": 9,
            "trailing_days": 10,
            "consumption_spike_factor": 3,
        }
        await sim.run_job("evaluate_alerts", today + timedelta(days=1))
        assert await level(sim) == "GREEN"


async def _onboarded_days_ago(engine, sim, days: int) -> None:
    await Database(engine).run(
        lambda s: s.execute(
            update(Institution)
            .where(Institution.id == sim.institution_id)
            .values(created_at=utcnow() - timedelta(days=days))
        )
    )


async def _recorded_back(engine, sim, enrollment, *, per_day: int, days: int) -> None:
    """Lessons recorded through the API on each of the `days` days before today, then moved back
    to those days (recorded and given then): the trailing history a spike is measured against."""
    now = utcnow()
    await delivered(sim, enrollment, per_day * days, now)
    ids = await Database(engine).run(
        lambda s: s.scalars(
            select(Lesson.id)
            .where(Lesson.institution_id == sim.institution_id)
            .order_by(Lesson.created_at)
        )
    )
    for n, lesson_id in enumerate(list(ids)):
        back = now - timedelta(days=1 + n // per_day)
        await Database(engine).run(
            lambda s, lesson_id=lesson_id, back=back: s.execute(
                update(Lesson)
                .where(Lesson.id == lesson_id)
                .values(created_at=back, occurred_at=back)
            )
        )


async def test_a_frozen_institution_still_refunds(engine, sim):
    enrollment = await paid_enrollment(sim, 10)
    frozen = await sim.service.post(
        f"/v1/regulator/institutions/{sim.institution_id}/freeze",
        headers=sim.regulator,
        json={"reason": "licence under review"},
    )
    assert frozen.json()["alert_level"] == "FROZEN"

    refund = await sim.refund_in_full(enrollment)

    assert refund["amount_fen"] == 100_000
    assert [i["amount_fen"] for i in await sim.bank_instructions()] == [100_000]
    assert (await payout(sim)).json()["code"] == "payouts_suspended"
