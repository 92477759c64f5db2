"""How soon the poll job asks the bank again about an instruction it has: soon after the send, when
most instructions settle, then less often, at most every POLL_EVERY."""

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from app.banks.outbox import FIRST_POLL_AFTER, POLL_EVERY, poll_delay
from app.kit.clock import utcnow
from tests.banks.simulated import simulated_bank
from tests.banks.test_outbox import FUNDED, payout_status, pending_payout

ages = st.timedeltas(min_value=timedelta(days=-1), max_value=timedelta(days=30))


@given(ages, ages)
def test_the_next_question_comes_between_15_seconds_and_5_minutes_and_never_sooner_later_on(
    one, other
):
    assert FIRST_POLL_AFTER <= poll_delay(one) <= POLL_EVERY
    younger, older = sorted((one, other))
    assert poll_delay(younger) <= poll_delay(older)
    # Backing off: the next question is never later than twice the time at the bank so far.
    assert poll_delay(older) <= max(older, FIRST_POLL_AFTER)


def test_the_schedule_at_its_edges():
    assert poll_delay(timedelta(0)) == FIRST_POLL_AFTER
    assert poll_delay(timedelta(minutes=1)) == timedelta(minutes=1)
    assert poll_delay(timedelta(hours=2)) == POLL_EVERY


async def test_a_payout_the_bank_settles_after_a_first_poll_shows_settled_within_seconds(
    engine, database_url
):
    """The demo's case: the poll job asked while the bank was still processing the payout; the
    bank settles it; the next run, half a minute later, learns it (it used to wait 5 minutes)."""
    async with simulated_bank(engine, database_url, "ums", FUNDED) as sim:
        payout = await pending_payout(engine, sim)
        await sim.run_job("dispatch_instructions")
        await sim.run_job("poll_instructions")
        assert await payout_status(sim, payout) == "sent"

        await sim.settle("success")
        await sim.run_job("poll_instructions", utcnow() + timedelta(seconds=30))

        assert await payout_status(sim, payout) == "settled"
