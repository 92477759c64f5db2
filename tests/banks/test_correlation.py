"""A job's calls to a bank carry the correlation id of the request that ran the job, so the bank's
logs of a payout can be found from ours (and the other way round)."""

import httpx
import pytest

from tests.banks.simulated import simulated_bank
from tests.banks.test_outbox import FUNDED, payout_status, pending_payout
from tests.banks.test_term_with_each_bank import BANKS


@pytest.mark.parametrize("adapter", BANKS)
async def test_the_dispatch_jobs_calls_to_the_bank_carry_the_callers_correlation_id(
    engine, database_url, adapter, monkeypatch
):
    to_bank: list[httpx.Request] = []
    forward = httpx.AsyncHTTPTransport.handle_async_request

    async def watched(transport: httpx.AsyncHTTPTransport, request: httpx.Request):
        if request.url.path.startswith("/banks/"):  # the simulator's bank side
            to_bank.append(request)
        return await forward(transport, request)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", watched)
    async with simulated_bank(engine, database_url, adapter, FUNDED) as sim:
        payout = await pending_payout(engine, sim)
        dispatched = await sim.service.post(
            "/v1/admin/jobs/dispatch_instructions",
            headers={**sim.admin, "X-Correlation-ID": "payout-run-7"},
            json={},
        )
        assert dispatched.status_code == 200, dispatched.text
        assert await payout_status(sim, payout) == "sent"

    assert to_bank, "the job called no bank"
    assert {request.headers.get("x-correlation-id") for request in to_bank} == {"payout-run-7"}
