"""A whole term for one institution on each bank, over real HTTP between the service and the bank
simulator: payments notified by the bank, lessons confirmed, T+1 payouts sent, executed and
reported back, one refund by the original route, and one payout returned by the bank (退票). At the
end the ledger's escrow cash equals the bank's balance of the escrow account."""

from datetime import timedelta
from uuid import UUID

import pytest
from sqlalchemy import select

from app.db.unit import Database
from app.kit.clock import SHANGHAI, utcnow
from app.ledger import service as ledger
from app.models import Alert, Payout
from tests.banks.simulated import PRICE, Simulated, simulated_bank
from tests.factories import auth

BANKS = ["ums", "iso20022", "gmbank"]


async def confirmed_lessons(sim: Simulated, enrollment: dict, keys: list[str]) -> None:
    for key in keys:
        lesson = await sim.service.post(
            f"/v1/enrollments/{enrollment['id']}/lessons",
            headers=sim.institution,
            json={
                "lesson_key": key,
                # Given just now: a lesson before the payment is refused.
                "occurred_at": utcnow().isoformat(),
                "count": 1,
            },
        )
        assert lesson.status_code == 201, lesson.text
        confirmed = await sim.service.post(
            f"/v1/lessons/{lesson.json()['id']}/confirm", headers=auth(enrollment["parent_key"])
        )
        assert confirmed.json()["status"] == "confirmed", confirmed.text


async def follow_results(sim: Simulated, as_of=None) -> None:
    """Results reach the service pushed by the bank (iso20022, gmbank) or asked for (ums)."""
    await sim.run_job("poll_instructions", as_of)


async def newest_payout(engine, sim: Simulated) -> Payout:
    async def work(session):
        return await session.scalar(
            select(Payout)
            .where(Payout.institution_id == sim.institution_id)
            .order_by(Payout.created_at.desc())
            .limit(1)
        )

    return await Database(engine).run(work)


@pytest.mark.parametrize("adapter", BANKS)
async def test_a_term_with_each_bank(engine, database_url, adapter):
    async with simulated_bank(engine, database_url, adapter) as sim:
        # Two families enroll and pay at the bank; the bank tells the service.
        first, second = await sim.enroll(10), await sim.enroll(5)
        for enrollment in (first, second):
            paid = await sim.pay(enrollment["order_no"], enrollment["amount_fen"])
            assert paid["deliveries"][0]["status_code"] == 200, paid
            seen = await sim.service.get(
                f"/v1/enrollments/{enrollment['id']}", headers=sim.institution
            )
            assert seen.json()["status"] == "active", seen.text
        assert await sim.bank_balance() == 15 * PRICE

        # Four lessons confirmed; the T+1 release pays them out through the bank.
        await confirmed_lessons(sim, first, ["L1", "L2", "L3", "L4"])
        tomorrow = utcnow() + timedelta(days=1)
        await sim.run_job("release_payouts", tomorrow)
        payout = await newest_payout(engine, sim)
        assert payout is not None and payout.amount_fen == 4 * PRICE
        await sim.run_job("dispatch_instructions")
        await sim.settle("success")
        await follow_results(sim)
        seen = await sim.service.get(f"/v1/payouts/{payout.id}", headers=sim.institution)
        assert seen.json()["status"] == "settled", seen.text
        assert await sim.bank_balance() == 11 * PRICE

        # The second family asks for its money back; it goes back by the original route.
        refund = await sim.refund_in_full(second)
        await sim.settle("success")
        await follow_results(sim)
        seen = await sim.service.get(
            f"/v1/refunds/{refund['id']}", headers=auth(second["parent_key"])
        )
        assert seen.json()["status"] == "settled", seen.text
        assert await sim.bank_balance() == 6 * PRICE

        # Two more lessons, paid out the next day, and that payout comes back (退票).
        await confirmed_lessons(sim, first, ["L5", "L6"])
        await sim.run_job("release_payouts", tomorrow + timedelta(days=1))
        returned = await newest_payout(engine, sim)
        assert returned.id != payout.id and returned.amount_fen == 2 * PRICE
        await sim.run_job("dispatch_instructions")
        await sim.settle("success")
        await follow_results(sim)
        assert await sim.bank_balance() == 4 * PRICE
        back = await sim.bank.post(
            "/sim/returns",
            json={"slug": sim.slug, "instruction_id": returned.instruction_id, "reason": "AC04"},
        )
        assert back.status_code == 200, back.text
        await follow_results(sim, utcnow() + timedelta(hours=2))  # settled ones: asked hourly
        seen = await sim.service.get(f"/v1/payouts/{returned.id}", headers=sim.institution)
        assert seen.json()["status"] == "returned", seen.text
        assert await sim.bank_balance() == 6 * PRICE

        # The ledger agrees with the bank, the returned money is releasable again, and the
        # regulator has an alert about the return.
        view = await sim.balance_view()
        assert view["ledger_balance_fen"] == await sim.bank_balance()
        assert view["in_transit_fen"] == 0
        async with engine.connect() as connection:
            report = await ledger.verify(connection, sim.institution_id)
        assert report.intact

        async def alerts(session):
            rows = await session.scalars(
                select(Alert.kind).where(Alert.institution_id == UUID(str(sim.institution_id)))
            )
            return list(rows)

        assert await Database(engine).run(alerts) == ["returned_payment"]

        # The day's statement, from the bank, reconciles clean: every line is a movement of the
        # ledger's (payments by their serial, payouts, the refund and the return by their ids),
        # and the bank closes the day at the ledger's balance, which it now also reports.
        today = utcnow().astimezone(SHANGHAI).date().isoformat()
        sent = await sim.bank.post(
            f"/sim/statements/{sim.slug}/{sim.escrow_account_no}/{today}/send"
        )
        assert sent.status_code == 200, sent.text
        assert sent.json()["status_code"] == 200, sent.json()
        run = sent.json()["body"]
        assert (run["status"], run["breaks"]) == ("clean", []), run
        assert run["closing_fen"] == run["ledger_balance_fen"] == 6 * PRICE
        assert (await sim.balance_view())["bank_balance_fen"] == 6 * PRICE
