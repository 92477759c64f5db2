"""One term of one institution, end to end over HTTP: three enrollments paid, lessons confirmed,
auto-confirmed across the 2026 Spring Festival and disputed, a T+1 payout and a refund; the ledger
identity of DOMAIN.md holds at the end and the journal verifies."""

from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

from app.db.unit import Database
from app.kit.clock import SHANGHAI, utcnow
from app.kit.workdays import is_workday
from app.ledger import service as ledger
from app.ledger.types import AccountKind
from app.models.api_key import Role
from app.payments.service import BankPayment, credit_payment
from tests.factories import auth, make_key, valid_uscc

PRICE = 10_000


def due_after_15_workdays(start: date) -> date:
    """Counted here independently of the service: the 15th working day after `start`."""
    day, counted = start, 0
    while counted < 15:
        day += timedelta(days=1)
        counted += is_workday(day)
    return day


async def test_a_term_end_to_end(engine, client, time_machine):
    admin = auth(await make_key(engine, Role.admin))
    code = f"E2E{utcnow().strftime('%H%M%S%f')}"
    created = await client.post(
        "/v1/jurisdictions",
        headers=admin,
        json={
            "code": code,
            "name": "E2E county",
            "profile": {"min_balance_floor_fen": 20_000, "parent_auto_confirm_workdays": 15},
        },
    )
    assert created.status_code == 201, created.text
    school = (
        await client.post(
            "/v1/institutions",
            headers=admin,
            json={
                "name": "E2E school",
                "uscc": valid_uscc(),
                "license_no": "E2E-1",
                "category": "non_subject",
                "jurisdiction_code": code,
                "bank_slug": "ums",
                "escrow_account_no": f"62{utcnow().strftime('%H%M%S%f')}",
                "basic_account_no": "622800001",
                "basic_account_name": "E2E school",
            },
        )
    ).json()
    institution = auth(
        (
            await client.post(
                "/v1/api-keys",
                headers=admin,
                json={
                    "role": "institution",
                    "name": "e2e",
                    "institution_id": school["id"],
                },
            )
        ).json()["key"]
    )
    regulator = auth(
        (
            await client.post(
                "/v1/api-keys",
                headers=admin,
                json={
                    "role": "regulator",
                    "name": "e2e",
                    "jurisdiction_code": code,
                },
            )
        ).json()["key"]
    )
    # The term starts on 9 February 2026; the clock moves on with it.
    today = date(2026, 2, 9)
    time_machine.move_to(datetime.combine(today, time(9), SHANGHAI))
    course = (
        await client.post(
            "/v1/courses",
            headers=institution,
            json={
                "name": "Go",
                "category": "non_subject",
                "lesson_price_fen": PRICE,
                "starts_on": today.isoformat(),
                "ends_on": (today + timedelta(days=80)).isoformat(),
            },
        )
    ).json()

    enrollments = []
    for n, (name, id_number, lessons) in enumerate(
        [
            ("A", "110105201501010017", 20),
            ("B", "110105201502020022", 10),
            ("C", "11010520150303002X", 8),
        ]
    ):
        enrollment = (
            await client.post(
                "/v1/enrollments",
                headers=institution,
                json={
                    "course_id": course["id"],
                    "student": {"name": name, "id_number": id_number},
                    "payer": {"name": f"{name} parent", "phone": "13800138000"},
                    "lessons": lessons,
                    "loan_funded": False,
                },
            )
        ).json()
        assert enrollment["status"] == "awaiting_payment", enrollment
        payment = BankPayment(
            bank_slug="ums",
            bank_reference=f"e2e-{school['id']}-{n}",
            escrow_account_no=school["escrow_account_no"],
            order_no=enrollment["order_no"],
            amount_fen=enrollment["amount_fen"],
            paid_at=utcnow(),
        )
        await Database(engine).run(lambda session, p=payment: credit_payment(session, p))
        enrollments.append(enrollment)
    first, second, third = enrollments

    async def record(enrollment, key, occurred_at):
        response = await client.post(
            f"/v1/enrollments/{enrollment['id']}/lessons",
            headers=institution,
            json={
                "lesson_key": key,
                "occurred_at": occurred_at.isoformat(),
                "count": 1,
            },
        )
        assert response.status_code == 201, response.text
        return response.json()

    # A: three lessons confirmed by the parent, given in the afternoon.
    time_machine.move_to(datetime.combine(today, time(18), SHANGHAI))
    for n in range(3):
        lesson = await record(first, f"A{n}", utcnow() - timedelta(hours=n + 1))
        confirmed = await client.post(
            f"/v1/lessons/{lesson['id']}/confirm", headers=auth(first["parent_key"])
        )
        assert confirmed.json()["status"] == "confirmed"

    # B: one lesson before the 2026 Spring Festival, left unanswered.
    held_on = date(2026, 2, 10)
    time_machine.move_to(datetime.combine(held_on, time(11), SHANGHAI))
    lesson_b = await record(second, "B0", datetime.combine(held_on, time(10), SHANGHAI))
    due = due_after_15_workdays(held_on)
    assert due > date(2026, 2, 24)  # the holiday (Feb 15-23) does not count, the make-up days do

    async def auto_confirm(day):
        as_of = datetime.combine(day, time(12), SHANGHAI).astimezone(UTC)
        response = await client.post(
            "/v1/admin/jobs/auto_confirm_lessons", headers=admin, json={"as_of": as_of.isoformat()}
        )
        assert response.status_code == 200, response.text

    time_machine.move_to(datetime.combine(due, time(12), SHANGHAI))
    await auto_confirm(due)
    seen = await client.get(f"/v1/lessons/{lesson_b['id']}", headers=institution)
    assert seen.json()["status"] == "pending_confirmation"
    time_machine.move_to(datetime.combine(due + timedelta(days=1), time(12), SHANGHAI))
    await auto_confirm(due + timedelta(days=1))
    seen = await client.get(f"/v1/lessons/{lesson_b['id']}", headers=institution)
    assert seen.json()["status"] == "auto_confirmed"

    # C: one lesson disputed and resolved for the parent, one disputed and held.
    for key in ("C0", "C1"):
        lesson = await record(third, key, utcnow() - timedelta(hours=2))
        disputed = await client.post(
            f"/v1/lessons/{lesson['id']}/dispute",
            headers=auth(third["parent_key"]),
            json={"reason": "absent"},
        )
        assert disputed.json()["status"] == "disputed"
    resolved = await client.post(
        f"/v1/lessons/{lesson['id']}/resolve", headers=regulator, json={"in_favor_of": "parent"}
    )
    assert resolved.status_code == 200, resolved.text

    # T+1 payout of A's and B's released lessons (40,000), as far as R allows: U = 340,000,
    # F = 20,000, so R = 360,000 against B = 380,000 leaves 20,000.
    tomorrow = utcnow() + timedelta(days=1)
    released = await client.post(
        "/v1/admin/jobs/release_payouts", headers=admin, json={"as_of": tomorrow.isoformat()}
    )
    assert released.status_code == 200
    view = (
        await client.get(f"/v1/institutions/{school['id']}/balance", headers=institution)
    ).json()
    paid_in = (20 + 10 + 8) * PRICE
    assert view["ledger_balance_fen"] == paid_in
    assert view["unconsumed_fen"] == paid_in - 4 * PRICE
    assert (view["required_fen"], view["in_transit_fen"], view["headroom_fen"]) == (
        360_000,
        20_000,
        0,
    )

    # C's parent asks for a refund: 8 lessons paid, one held in dispute.
    refund = (
        await client.post(
            f"/v1/enrollments/{third['id']}/refunds",
            headers=auth(third["parent_key"]),
            json={"reason": "moving"},
        )
    ).json()
    assert refund["amount_fen"] == 7 * PRICE
    approved = await client.post(f"/v1/refunds/{refund['id']}/approve", headers=institution)
    assert approved.status_code == 200, approved.text

    async with engine.connect() as connection:
        totals = await ledger.balances_by_kind(connection, UUID(school["id"]))
        report = await ledger.verify(connection, UUID(school["id"]))
    assert totals[AccountKind.escrow_cash] == paid_in
    assert totals[AccountKind.escrow_cash] == (
        totals[AccountKind.prepaid]
        + totals[AccountKind.releasable]
        + totals[AccountKind.payout_in_transit]
        + totals[AccountKind.refund_in_transit]
        + totals[AccountKind.suspense]
        + totals[AccountKind.own_funds]
    )
    assert totals[AccountKind.refund_in_transit] == 7 * PRICE
    assert totals[AccountKind.payout_in_transit] == 20_000
    assert totals[AccountKind.prepaid] == paid_in - 4 * PRICE - 7 * PRICE
    assert report.intact
