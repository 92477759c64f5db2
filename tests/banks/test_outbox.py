"""The outbox against the bank simulator over HTTP: an instruction reaches the bank and is executed
once, whatever happens to the answer, because the dispatch job asks the bank before it would send
again; refusals give the money back; results arrive in any order and any number of times."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.banks.outbox import FIRST_POLL_AFTER
from app.db.unit import Database
from app.kit.clock import as_utc, utcnow
from app.models import Instruction
from tests.banks.simulated import PRICE, Simulated, simulated_bank
from tests.banks.test_term_with_each_bank import BANKS, newest_payout
from tests.factories import make_paid_enrollment

FUNDED = 10 * PRICE


async def pending_payout(engine, sim: Simulated, amount_fen: int = 3 * PRICE):
    """A payout written with its instruction, not yet sent, from an enrollment of 10 lessons paid
    (the bank's account was opened with the same 100,000), 5 of them confirmed."""
    await make_paid_enrollment(engine, sim.world(), lessons=10, released=5)
    created = await sim.service.post(
        "/v1/payouts", json={"amount_fen": amount_fen}, headers=sim.institution
    )
    assert created.status_code == 201, created.text
    return created.json()


async def behave(sim: Simulated, next_: str, **options) -> None:
    queued = await sim.bank.post(
        "/sim/behaviour", json={"slug": sim.slug, "next": next_, **options}
    )
    assert queued.status_code == 200, queued.text


async def payout_status(sim: Simulated, payout: dict) -> str:
    seen = await sim.service.get(f"/v1/payouts/{payout['id']}", headers=sim.institution)
    return seen.json()["status"]


@pytest.mark.parametrize("adapter", BANKS)
@pytest.mark.parametrize("trouble", ["execute_then_timeout", "execute_then_502"])
async def test_an_executed_instruction_whose_answer_is_lost_is_not_paid_twice(
    engine, database_url, adapter, trouble
):
    async with simulated_bank(
        engine, database_url, adapter, FUNDED, bank_timeout_seconds=0.5
    ) as sim:
        payout = await pending_payout(engine, sim)
        await behave(sim, trouble, hang_seconds=2)
        await sim.run_job("dispatch_instructions")
        # The job asked (or, with no query at this bank, sent again and heard "duplicate").
        assert await payout_status(sim, payout) == "sent"
        await sim.run_job("dispatch_instructions", utcnow() + timedelta(hours=2))
        [at_bank] = await sim.bank_instructions()
        assert at_bank["id"] == payout["instruction_id"]
        await sim.settle("success")
        await sim.run_job("poll_instructions")
        assert await payout_status(sim, payout) == "settled"
        assert await sim.bank_balance() == 10 * PRICE - 3 * PRICE
        assert (await sim.balance_view())["ledger_balance_fen"] == 10 * PRICE - 3 * PRICE


@pytest.mark.parametrize("adapter", BANKS)
async def test_an_instruction_lost_before_the_bank_got_it_is_sent_again(
    engine, database_url, adapter
):
    async with simulated_bank(engine, database_url, adapter, FUNDED) as sim:
        payout = await pending_payout(engine, sim)
        await behave(sim, "drop_before_execute")
        await sim.run_job("dispatch_instructions")
        assert await payout_status(sim, payout) == "sent"
        [at_bank] = await sim.bank_instructions()
        assert at_bank["id"] == payout["instruction_id"]
        await sim.settle("success")
        await sim.run_job("poll_instructions")
        assert await payout_status(sim, payout) == "settled"
        assert await sim.bank_balance() == 7 * PRICE


@pytest.mark.parametrize("adapter", BANKS)
async def test_a_refused_instruction_gives_the_money_back(engine, database_url, adapter):
    async with simulated_bank(engine, database_url, adapter, FUNDED) as sim:
        payout = await pending_payout(engine, sim)
        await behave(sim, "refuse")
        await sim.run_job("dispatch_instructions")
        assert await payout_status(sim, payout) == "failed"
        view = await sim.balance_view()
        assert view["in_transit_fen"] == 0
        assert view["ledger_balance_fen"] == await sim.bank_balance() == 10 * PRICE


@pytest.mark.parametrize("adapter", ["iso20022", "gmbank"])
async def test_results_in_reverse_order_and_twice_settle_each_payout_once(
    engine, database_url, adapter
):
    async with simulated_bank(engine, database_url, adapter, FUNDED) as sim:
        first = await pending_payout(engine, sim, amount_fen=PRICE)
        second = await sim.service.post(
            "/v1/payouts", json={"amount_fen": PRICE}, headers=sim.institution
        )
        assert second.status_code == 201, second.text
        await sim.run_job("dispatch_instructions")
        settled = await sim.settle("success", order="reversed", copies=3)
        assert settled
        for payout in (first, second.json()):
            assert await payout_status(sim, payout) == "settled"
        assert (await sim.balance_view())["ledger_balance_fen"] == await sim.bank_balance()
        assert await sim.bank_balance() == 10 * PRICE - 2 * PRICE


@pytest.mark.parametrize("adapter", ["iso20022", "gmbank"])
async def test_a_settled_payout_returned_later_puts_the_money_back(engine, database_url, adapter):
    async with simulated_bank(engine, database_url, adapter, FUNDED) as sim:
        payout = await pending_payout(engine, sim)
        await sim.run_job("dispatch_instructions")
        await sim.settle("success")
        assert await payout_status(sim, payout) == "settled"
        returned = await sim.bank.post(
            "/sim/returns",
            json={"slug": sim.slug, "instruction_id": payout["instruction_id"], "copies": 2},
        )
        assert returned.status_code == 200, returned.text
        assert await payout_status(sim, payout) == "returned"
        view = await sim.balance_view()
        assert view["ledger_balance_fen"] == await sim.bank_balance() == 10 * PRICE
        assert view["releasable_fen"] >= 3 * PRICE
        latest = await newest_payout(engine, sim)
        assert latest.status == "returned"


@pytest.mark.parametrize("adapter", ["ums", "gmbank"])  # the banks that answer queries
async def test_polling_an_instruction_the_bank_is_still_processing_asks_once_per_run(
    engine, database_url, adapter
):
    async with simulated_bank(engine, database_url, adapter, FUNDED) as sim:
        payout = await pending_payout(engine, sim)
        await sim.run_job("dispatch_instructions")
        assert await payout_status(sim, payout) == "sent"

        before = utcnow()
        # The run ends (it used to ask again and again while the bank said "processing").
        await asyncio.wait_for(sim.run_job("poll_instructions"), timeout=30)

        assert await payout_status(sim, payout) == "sent"
        instruction = await Database(engine).run(
            lambda session: session.scalar(
                select(Instruction).where(Instruction.id == payout["instruction_id"])
            )
        )
        # Asked again only when it is due again: soon, as it was sent just now.
        due = as_utc(instruction.next_attempt_at)
        assert before + FIRST_POLL_AFTER <= due <= utcnow() + FIRST_POLL_AFTER

        # Settled, it is watched for a return (ums), hourly: a return comes days later.
        await sim.settle("success")
        await sim.run_job("poll_instructions", due)
        assert await payout_status(sim, payout) == "settled"
        instruction = await Database(engine).run(
            lambda session: session.scalar(
                select(Instruction).where(Instruction.id == payout["instruction_id"])
            )
        )
        watched = as_utc(instruction.next_attempt_at) - due
        assert timedelta(minutes=55) < watched < timedelta(minutes=65)
