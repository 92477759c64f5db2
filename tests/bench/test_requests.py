"""The two measurements of bench.requests that a wrong figure would come from silently: the
statements counted from PostgreSQL's log, and the server's CPU read from /proc."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.requests import Logged, cpu_seconds, empty_transactions, logged_statements

LOG = """\
2026-11-29 20:00:00.001 UTC [100] postgres@bench LOG:  statement: BEGIN;
2026-11-29 20:00:00.002 UTC [900] postgres@bench LOG:  statement: SELECT 'bench-marker-a'
2026-11-29 20:00:00.003 UTC [100] postgres@bench LOG:  statement: BEGIN;
2026-11-29 20:00:00.004 UTC [100] postgres@bench LOG:  execute __asyncpg_stmt_1__: SELECT id
\tFROM lessons
\tWHERE id = $1
2026-11-29 20:00:00.004 UTC [100] postgres@bench DETAIL:  parameters: $1 = '7'
2026-11-29 20:00:00.005 UTC [200] postgres@other LOG:  statement: SELECT 1
2026-11-29 20:00:00.006 UTC [900] postgres@bench LOG:  statement: SELECT pg_backend_pid()
2026-11-29 20:00:00.007 UTC [101] postgres@bench LOG:  execute <unnamed>: COMMIT
2026-11-29 20:00:00.008 UTC [900] postgres@bench LOG:  statement: SELECT 'bench-marker-b'
2026-11-29 20:00:00.009 UTC [100] postgres@bench LOG:  statement: ROLLBACK
"""


def test_statements_between_the_markers_of_one_database(tmp_path: Path) -> None:
    log = tmp_path / "postgresql.log"
    log.write_text(LOG)
    found = logged_statements(log, 0, "bench", "bench-marker-a", "bench-marker-b", skip=900)
    # Not the BEGIN before the first marker nor the ROLLBACK after the second, nor another
    # database's statement, nor the marker connection's own; a statement over several lines once.
    assert found == [
        Logged(100, "BEGIN;"),
        Logged(100, "SELECT id FROM lessons WHERE id = $1"),
        Logged(101, "COMMIT"),
    ]


def test_an_empty_transaction_is_a_begin_then_rollback_on_one_connection() -> None:
    statements = [
        Logged(1, "BEGIN;"),
        Logged(2, "BEGIN;"),  # another connection's, interleaved
        Logged(1, "ROLLBACK"),  # a pre-ping's
        Logged(2, "SELECT 1"),
        Logged(2, "ROLLBACK"),  # a transaction that did something
        Logged(1, "BEGIN;"),
        Logged(1, "COMMIT;"),
    ]
    assert empty_transactions(statements) == 1


def test_a_missing_end_marker_is_an_error(tmp_path: Path) -> None:
    log = tmp_path / "postgresql.log"
    log.write_text(LOG)
    with pytest.raises(RuntimeError, match="bench-marker-c"):
        logged_statements(log, 0, "bench", "bench-marker-a", "bench-marker-c", skip=900)


BURN = """
import sys, time
while time.process_time() < 0.5:
    pass
print("burnt", flush=True)
sys.stdin.read()
"""


def test_cpu_of_a_process_counts_its_children_live_and_ended() -> None:
    before = cpu_seconds(os.getpid())
    child = subprocess.Popen(
        [sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "burnt\n"
        live = cpu_seconds(os.getpid()) - before
    finally:
        child.communicate("")
    ended = cpu_seconds(os.getpid()) - before
    assert live >= 0.45  # the child's half second, read while it still runs
    assert ended >= live  # and still counted once it has ended and been reaped
