"""Opening balances against a real statement: the simulated bank's escrow account opens holding
money collected before onboarding, its first statement is read and reconciled as any other, and
the import must agree with it."""

from tests.banks.simulated import simulated_bank
from tests.opening.helpers import csv_file, row
from tests.reconciliation.test_intake import _paid, _send, _statement


async def test_the_first_statement_s_surplus_is_imported_and_its_break_closed(engine, database_url):
    async with simulated_bank(engine, database_url, "ums", opening_balance_fen=150_000) as sim:
        enrollment = await _paid(sim)  # a platform payment on the statement's day
        run = (await _send(sim, *(await _statement(sim)))).json()
        [surplus] = run["breaks"]
        assert surplus["type"] == "balance_mismatch"
        assert surplus["amount_fen"] - surplus["expected_fen"] == 150_000
        path = f"/v1/institutions/{sim.institution_id}/opening-balances"
        csv = {**sim.admin, "Content-Type": "text/csv"}

        short = await sim.service.post(
            path, content=csv_file(row(enrollment["course_id"], 149_999)), headers=csv
        )
        assert short.status_code == 422, short.text
        assert short.json()["difference_fen"] == -1
        imported = await sim.service.post(
            path,
            content=csv_file(
                row(enrollment["course_id"], 100_000, 20), row(enrollment["course_id"], 50_000, 5)
            ),
            headers=csv,
        )
        assert imported.status_code == 201, imported.text

        view = await sim.balance_view()
        assert (
            view["ledger_balance_fen"]
            == view["bank_balance_fen"]
            == 150_000 + enrollment["amount_fen"]
        )
        assert view["unconsumed_fen"] == 150_000 + enrollment["amount_fen"]
        breaks = await sim.service.get(
            f"/v1/institutions/{sim.institution_id}/reconciliations", headers=sim.institution
        )
        assert breaks.status_code == 200, breaks.text
        [listed] = [b for r in breaks.json()["items"] for b in r["breaks"]]
        assert listed["status"] == "closed"
