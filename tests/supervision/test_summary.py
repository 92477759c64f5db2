"""GET /v1/regulator/summary on a known world."""

from app.db.unit import Database
from app.models import Institution
from tests.factories import auth, make_paid_enrollment, make_world
from tests.supervision.helpers import add_institution


async def test_the_summary_of_a_known_jurisdiction(engine, client):
    a = await make_world(engine, release_lag_days=0)
    b = await add_institution(engine, a)
    await add_institution(engine, a)  # onboarded, nothing collected yet
    await make_paid_enrollment(engine, a, lessons=20)  # U 200,000
    await make_paid_enrollment(engine, a, lessons=20, released=5)  # U 150,000
    await make_paid_enrollment(engine, b, lessons=10, pending=2)  # U 100,000 (pending still owed)
    await make_paid_enrollment(engine, b, lessons=10, paid=False)  # no money: not covered
    elsewhere = await make_world(engine)
    await make_paid_enrollment(engine, elsewhere, lessons=3)

    async def bank_reports(session):
        (await session.get_one(Institution, b.institution_id)).bank_balance_fen = 90_000

    await Database(engine).run(bank_reports)
    await client.post(
        f"/v1/regulator/institutions/{b.institution_id}/freeze",
        json={"reason": "audit"},
        headers=auth(a.regulator_key),
    )

    response = await client.get("/v1/regulator/summary", headers=auth(a.regulator_key))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "jurisdiction_code": a.jurisdiction_code,
        "institutions": 3,
        "students_covered": 3,
        "enrollments_covered": 3,
        "unconsumed_fen": 450_000,
        "bank_balance_fen": 90_000,
        "institutions_reported_by_bank": 1,
        "ledger_balance_fen": 500_000,
        "levels": {"GREEN": 2, "YELLOW": 0, "RED": 0, "FROZEN": 1},
    }
    # A regulator cannot widen it; the operator names the jurisdiction or sees all.
    widened = await client.get(
        "/v1/regulator/summary",
        params={"jurisdiction_code": elsewhere.jurisdiction_code},
        headers=auth(a.regulator_key),
    )
    assert widened.json() == response.json()
    operator = await client.get(
        "/v1/regulator/summary",
        params={"jurisdiction_code": elsewhere.jurisdiction_code},
        headers=auth(a.admin_key),
    )
    assert (operator.json()["institutions"], operator.json()["unconsumed_fen"]) == (1, 30_000)
    everything = (await client.get("/v1/regulator/summary", headers=auth(a.admin_key))).json()
    assert everything["jurisdiction_code"] is None
    assert everything["institutions"] >= 4
    assert everything["unconsumed_fen"] >= 480_000


async def test_the_summary_is_not_for_institutions(engine, client):
    world = await make_world(engine)
    response = await client.get("/v1/regulator/summary", headers=auth(world.institution_key))
    assert response.status_code == 404
    bad = await client.get(
        "/v1/regulator/summary", params={"jurisdiction_code": "x y"}, headers=auth(world.admin_key)
    )
    assert bad.status_code == 422
