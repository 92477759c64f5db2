"""The term replay (`bench/term/`) at its smallest, so that a change that breaks the replay, or
a day that no longer ends with every fen where it belongs, fails CI rather than the next benchmark
run; and the checks it ends with, on figures that are off by one fen."""

import asyncio
import signal
import socket
import sys
from pathlib import Path

import pytest
from sqlalchemy import make_url

from app.ledger.types import AccountKind
from bench.ledger_throughput import drop_database
from bench.term.checks import expectation_problem, identity_problem
from tests.conftest import TEST_DATABASE_URL

ROOT = Path(__file__).resolve().parents[2]
# Keyed as the ledger's totals of many institutions are: by the kinds' plain strings.
BALANCED = {
    AccountKind.escrow_cash.value: 900_000,
    AccountKind.prepaid.value: 500_000,
    AccountKind.releasable.value: 100_000,
    AccountKind.payout_in_transit.value: 200_000,
    AccountKind.refund_in_transit.value: 50_000,
    AccountKind.suspense.value: 30_000,
    AccountKind.own_funds.value: 20_000,
}


def free_ports(count: int) -> int:
    """The first of `count` consecutive ports free on loopback (the replay's bank takes the first,
    the service's processes the next)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        try:
            for port in range(first, first + count):
                with socket.socket() as taken:
                    taken.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError("no free ports")


def test_the_identity_holds_on_balanced_books():
    assert identity_problem(BALANCED) is None
    assert expectation_problem(BALANCED, dict(BALANCED)) is None


@pytest.mark.parametrize("kind", list(BALANCED))
def test_a_fen_out_of_place_is_found(kind):
    off = {**BALANCED, kind: BALANCED[kind] + 1}
    assert identity_problem(off) is not None
    assert f"{kind} {BALANCED[kind] + 1} fen, expected {BALANCED[kind]}" in (
        expectation_problem(BALANCED, off) or ""
    )


def test_a_kind_without_an_account_counts_as_nothing():
    assert expectation_problem({"suspense": 0}, {}) is None
    assert expectation_problem({"suspense": 0}, {"suspense": -1}) is not None


SMALLEST = [
    "--institutions",
    "3",  # one at each bank
    "--enrollments",
    "2",  # one of them refunds
    "--lessons",
    "2",  # one recorded alone, one in a batch; the first confirmed, the second left pending
    "--workers",
    "1",
    "--connections",
    "4",
]


@pytest.mark.postgres_only
async def test_the_smallest_term_replay_passes_its_checks():
    url = make_url(TEST_DATABASE_URL)
    scratch = url.set(database=f"{url.database}_term").render_as_string(hide_password=False)
    command = ["-m", "bench.term", "--database-url", scratch, "--port", str(free_ports(2))]
    replay = await asyncio.create_subprocess_exec(
        sys.executable,
        *command,
        *SMALLEST,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        printed, _ = await asyncio.wait_for(replay.communicate(), timeout=170)
    except TimeoutError:
        replay.send_signal(signal.SIGINT)  # it stops the processes it started
        await asyncio.wait_for(replay.wait(), timeout=40)
        raise
    finally:
        await drop_database(scratch)
    output = printed.decode()
    assert replay.returncode == 0, output[-3000:]
    assert "FAILED" not in output
    for passed in (
        "PASSED: 3 journals verified intact",
        "PASSED: the ledger identity and the expected balances hold for 3 institutions",
        "PASSED: every escrow account at the bank holds what the ledger says",
        "statements reconciled clean, no break open",  # 3, or 6 across midnight in Beijing
    ):
        assert passed in output, output[-3000:]
