"""One copy of the money: an enrollment's paid, released and refunded counters must say what its
prepaid account holds. Verify names the first enrollment whose counters disagree."""

from app.ledger.types import VerifyReport
from tests.factories import make_paid_enrollment, make_world
from tests.ledger.conftest import db_id, plain_sql, verify


async def _tamper_counter(engine, enrollment, assignment: str) -> None:
    # The counters are the enrollment's own columns: nothing guards them but verify.
    await plain_sql(
        engine,
        f"UPDATE enrollments SET {assignment} WHERE institution_id = :i AND id = :e",
        i=db_id(engine, enrollment.institution_id),
        e=db_id(engine, enrollment.id),
    )


async def test_counters_in_agreement_with_the_ledger_verify(engine):
    world = await make_world(engine)
    await make_paid_enrollment(engine, world, lessons=10, released=3)
    await make_paid_enrollment(engine, world, lessons=5)
    report = await verify(engine, world.institution_id)
    assert report.intact, report.problem


async def test_an_enrollment_whose_counters_were_changed_is_named(engine):
    world = await make_world(engine)
    first = await make_paid_enrollment(engine, world, lessons=10, released=3)
    second = await make_paid_enrollment(engine, world, lessons=5)
    await _tamper_counter(engine, second, "refunded_fen = 20000")

    report: VerifyReport = await verify(engine, world.institution_id)

    assert not report.intact and report.enrollment_id == second.id
    assert report.problem == (
        f"enrollment {second.id} says paid 50000 - released 0 - refunded 20000 = 30000 fen, "
        "its prepaid account holds 50000 fen"
    )

    await _tamper_counter(engine, first, "confirmed_fen = 0")
    assert (await verify(engine, world.institution_id)).enrollment_id == first.id  # the oldest
