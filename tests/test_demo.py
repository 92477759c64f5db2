"""The demo the README's run command seeds: every enrollment state, once, on an empty database, with
the money moving through the bank simulator over real HTTP."""

import asyncio

import httpx

from app.config import InboxApply, Settings
from app.db import migrate
from app.db.unit import Database
from app.demo import demo_banks, seed, simulator_config
from app.main import create_app
from bank_simulator.app import create_simulator
from tests.factories import auth
from tests.live import serve


async def test_demo_has_every_enrollment_state_and_seeds_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    # As `prepaid-guard serve --demo` runs it: payments credited by the inbox's worker, after the
    # bank's reply (the suite's default credits them before it).
    app = create_app(Settings(database_url=url, inbox_apply=InboxApply.background))
    banks = demo_banks()
    async with app.router.lifespan_context(app), serve(app) as service_url:
        simulator = create_simulator(simulator_config(service_url, banks))
        async with (
            simulator.router.lifespan_context(simulator),
            serve(simulator) as bank_url,
            httpx.AsyncClient(base_url=service_url, timeout=30) as client,
            httpx.AsyncClient(base_url=bank_url, timeout=30) as bank,
        ):
            db = Database(app.state.engine, app.state.settings)
            keys = await seed(db, client, bank, banks)
            assert keys is not None
            assert await seed(db, client, bank, banks) is None  # the database has data now

            listed = await client.get("/v1/enrollments?limit=50", headers=auth(keys.institution))
            assert listed.status_code == 200, listed.text
            states = {item["status"] for item in listed.json()["items"]}
            assert states == {"awaiting_payment", "active", "completed", "refunded", "cancelled"}
            mine = await client.get(
                f"/v1/enrollments/{keys.active_enrollment_id}", headers=auth(keys.parent_active)
            )
            assert mine.json()["lessons_disputed"] == 1 and mine.json()["lessons_consumed"] == 4

            # The institution sees its course, its payout and the refund asked of it, all settled
            # by the bank already.
            institution = auth(keys.institution)
            for path, statuses in [
                ("/v1/courses", None),
                ("/v1/payouts", ["settled"]),
                ("/v1/refunds", ["settled"]),
            ]:
                items = (await client.get(path, headers=institution)).json()["items"]
                assert len(items) == 1
                assert statuses is None or [item["status"] for item in items] == statuses

            # The payout and the refund went through the bank: nothing is left in transit, and
            # the ledger holds exactly what the bank holds.
            view = (
                await client.get(
                    f"/v1/institutions/{keys.institution_id}/balance",
                    headers=auth(keys.regulator),
                )
            ).json()
            school = (
                await client.get(
                    f"/v1/institutions/{keys.institution_id}", headers=auth(keys.regulator)
                )
            ).json()
            account = school["escrow_account_no"]
            at_bank = (await bank.get(f"/sim/accounts/ums/{account}")).json()
            assert view["in_transit_fen"] == 0
            assert view["ledger_balance_fen"] == at_bank["balance_fen"] > 0
            debits = [t for t in at_bank["transactions"] if t["direction"] == "D"]
            assert len(debits) == 2  # the payout and the refund, each executed once
