"""The monthly payout cap counts money that left: a payout the bank returned (退票) is back in the
escrow account and no longer uses the cap."""

from sqlalchemy import select

from app.db.unit import Database
from app.models import Institution
from tests.banks.simulated import PRICE, simulated_bank
from tests.factories import make_paid_enrollment


async def test_a_returned_payout_no_longer_counts_against_the_cap(engine, database_url):
    async with simulated_bank(engine, database_url, "gmbank", 10 * PRICE) as sim:
        code = await Database(engine).run(
            lambda s: s.scalar(
                select(Institution.jurisdiction_code).where(Institution.id == sim.institution_id)
            )
        )
        # F = 10,000 and a cap of 2 x F a month; 5 of 10 lessons released: 50,000 releasable.
        profile = await sim.service.put(
            f"/v1/jurisdictions/{code}/profile",
            headers=sim.regulator,
            json={
                "min_balance_floor_fen": PRICE,
                "monthly_payout_cap_floor_multiple": 2,
                "release_lag_days": 0,
            },
        )
        assert profile.status_code == 200, profile.text
        await make_paid_enrollment(engine, sim.world(), lessons=10, released=5)

        payout = await sim.service.post("/v1/payouts", headers=sim.institution, json={})
        assert payout.status_code == 201 and payout.json()["amount_fen"] == 2 * PRICE
        refused = await sim.service.post("/v1/payouts", headers=sim.institution, json={})
        assert refused.status_code == 409 and refused.json()["code"] == "monthly_cap_reached"

        await sim.run_job("dispatch_instructions")
        await sim.settle("success")
        returned = await sim.bank.post(
            "/sim/returns",
            json={"slug": sim.slug, "instruction_id": payout.json()["instruction_id"]},
        )
        assert returned.status_code == 200, returned.text
        seen = await sim.service.get(f"/v1/payouts/{payout.json()['id']}", headers=sim.institution)
        assert seen.json()["status"] == "returned"

        view = await sim.balance_view()
        assert (view["month_payouts_fen"], view["monthly_cap_left_fen"]) == (0, 2 * PRICE)
        again = await sim.service.post("/v1/payouts", headers=sim.institution, json={})
        assert again.status_code == 201 and again.json()["amount_fen"] == 2 * PRICE
