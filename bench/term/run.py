"""Runs the replay: a fresh database, the service's processes and the bank's, the day, the checks,
and the report."""

import argparse
import asyncio
import contextlib
import json
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

import bench.term
from app.db import migrate
from bank_simulator.keys import BankKeys, bank_keys
from bench.ledger_throughput import recreate_database
from bench.notifications import start_service
from bench.term.checks import ReplayFailed
from bench.term.day import BANKS, LESSONS_BOUGHT, Replay
from bench.term.measure import Endpoint, Stats, cpu_seconds, peak_rss_mib


def start_bank(
    config: Path, port: int, service_ports: list[int], connections: int
) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.term.bank",
            "--config",
            str(config),
            "--port",
            str(port),
            "--service-ports",
            ",".join(map(str, service_ports)),
            "--connections",
            str(connections),
        ]
    )


def simulator_file(directory: Path, service_port: int, keys: dict[str, BankKeys]) -> Path:
    """The simulator's config with the bank halves of the keys (test keys, made for this run)."""
    path = directory / "term-banks.json"
    config = {
        "service_url": f"http://127.0.0.1:{service_port}",  # the port is chosen per request
        "banks": [
            {"slug": slug, "adapter": bank.adapter, **bank.simulator_config}
            for slug, bank in keys.items()
        ],
        "delivery_backoff_seconds": 0.05,
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


async def wait_up(process: subprocess.Popen, url: str, seconds: float = 120) -> None:
    """Until `url` answers 200; a process that exits or takes longer fails the run. Starting is
    slow when the machine is shared: importing the app alone is 2 s of CPU."""
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ReplayFailed(f"{url}: the process exited with {process.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise ReplayFailed(f"{url}: not up after {seconds} s")


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.term",
        description=bench.term.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/bench_term")
    parser.add_argument("--institutions", type=int, default=20)
    parser.add_argument("--enrollments", type=int, default=20, help="per institution")
    parser.add_argument(
        "--lessons", type=int, default=4, help="per enrollment: half single, half batched"
    )
    parser.add_argument("--batch-size", type=int, default=100, help="at most 1,000")
    parser.add_argument("--refund-every", type=int, default=10, help="every n-th family refunds")
    parser.add_argument("--workers", type=int, default=2, help="service processes")
    parser.add_argument("--connections", type=int, default=32, help="requests at a time")
    parser.add_argument("--port", type=int, default=8930, help="the bank's; the service's follow")
    parser.add_argument("--settle-seconds", type=float, default=60)
    parser.add_argument("--out", type=Path, help="the figures as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= 1000 or args.lessons < 1 or args.lessons > LESSONS_BOUGHT:
        parser.error("--batch-size 1 to 1,000, --lessons 1 to 20")
    if min(args.institutions, args.enrollments, args.refund_every, args.workers) < 1:
        parser.error("counts must be at least 1")
    return args


@contextlib.asynccontextmanager
async def processes(
    args: argparse.Namespace, secret_key: str, admin: str, keys: dict[str, BankKeys]
) -> AsyncIterator[tuple[list[subprocess.Popen], subprocess.Popen]]:
    """The service's processes (one per port) and the bank's, up, and stopped afterwards."""
    bank_port, ports = args.port, [args.port + 1 + n for n in range(args.workers)]
    with tempfile.TemporaryDirectory(prefix="bench-term-") as directory:
        config = simulator_file(Path(directory), ports[0], keys)
        environment = {
            "ADMIN_API_KEY": admin,
            # uvicorn's 5 s default closes connections idle through a long job: a client that
            # reuses one the moment the server closes it reads nothing back (tests/live.py).
            "UVICORN_TIMEOUT_KEEP_ALIVE": "600",
        }
        services = [
            start_service(args.database_url, secret_key, port, environment) for port in ports
        ]
        bank = start_bank(config, bank_port, ports, args.connections)
        try:
            for process, port in zip(services, ports, strict=True):
                await wait_up(process, f"http://127.0.0.1:{port}/healthz")
            await wait_up(bank, f"http://127.0.0.1:{bank_port}/sim/messages")
            yield services, bank
        finally:
            stop([*services, bank])


def usage(services: list[subprocess.Popen], bank: subprocess.Popen) -> dict[str, Any]:
    """CPU and peak memory of the processes over the whole run (read before they stop)."""
    return {
        "service_cpu_s": [round(cpu_seconds(p.pid), 2) for p in services],
        "service_peak_rss_mib": [round(peak_rss_mib(p.pid), 1) for p in services],
        "bank_cpu_s": round(cpu_seconds(bank.pid), 2),
        "bank_peak_rss_mib": round(peak_rss_mib(bank.pid), 1),
    }


async def replay(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    await recreate_database(args.database_url)
    await asyncio.to_thread(migrate.upgrade, args.database_url)
    setup = {"database_s": round(time.perf_counter() - started, 2)}
    secret_key, admin = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    keys = {slug: bank_keys(slug) for slug in BANKS}
    async with processes(args, secret_key, admin, keys) as (services, bank_process):
        setup["processes_s"] = round(time.perf_counter() - started - setup["database_s"], 2)
        print(
            f"setup: database made and migrated in {setup['database_s']} s, "
            f"{args.workers} service processes and the bank up in {setup['processes_s']} s",
            flush=True,
        )
        stats = Stats([process.pid for process in services], bank_process.pid)
        ports = [args.port + 1 + n for n in range(args.workers)]
        service = Endpoint(ports, args.connections, stats)
        bank = Endpoint([args.port], args.connections, stats)
        try:
            day = Replay(args, service, bank, admin, f"http://127.0.0.1:{args.port}", keys)
            checked = await run_day(day, stats, args.database_url)
        finally:
            await service.aclose()
            await bank.aclose()
        used = usage(services, bank_process)
    return {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "setup": setup,
        "phases": [asdict(phase) for phase in stats.phases],
        "operations": [asdict(operation) for operation in stats.operations],
        "processes": used,
        "checked": checked,
    }


async def run_day(day: Replay, stats: Stats, database_url: str) -> list[str]:
    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("onboarding", day.onboard),
        ("enrollment", day.enroll),
        ("payment burst", day.pay),
        ("parents see the payment", day.parents_look),
        ("evening peak: single lessons", day.lessons_single),
        ("evening peak: lesson batches", day.lessons_batch),
        ("confirmations", day.confirm),
        ("T+1 payout batch", day.payouts),
        ("refunds", day.refunds),
        ("statements and reconciliation", day.statements),
    ]
    for name, step in steps:
        async with stats.phase(name):
            await step()
    async with stats.phase("checks"):
        return await day.check(database_url)


def report(figures: dict[str, Any]) -> None:
    print(
        f"\n{'phase / operation':<52} {'count':>6} {'per s':>8} {'items/s':>8} "
        f"{'p50':>7} {'p95':>7} {'p99':>7} ms"
    )
    for phase in figures["phases"]:
        per_item = phase["service_cpu_ms_per_item"]
        print(
            f"{phase['phase']} ({phase['seconds']} s; CPU s: service {phase['service_cpu_s']}"
            + (f" = {per_item} ms each" if per_item is not None else "")
            + f", bank {phase['bank_cpu_s']})"
        )
        for op in figures["operations"]:
            if op["phase"] == phase["phase"]:
                print(
                    f"  {op['operation']:<50} {op['count']:>6} {op['per_second']:>8} "
                    f"{op['items_per_second']:>8} {op['p50_ms']:>7} {op['p95_ms']:>7} "
                    f"{op['p99_ms']:>7}"
                )
    print(f"\nprocesses: {json.dumps(figures['processes'])}")
    for line in figures["checked"]:
        print(f"PASSED: {line}")


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    try:
        figures = asyncio.run(replay(args))
    except ReplayFailed as failure:
        print(f"FAILED: {failure}", flush=True)
        raise SystemExit(1) from None
    except Exception as error:  # anything else that stops the day fails it too, with its trace
        traceback.print_exc()
        print(f"FAILED: {type(error).__name__}: {error}", flush=True)
        raise SystemExit(1) from None
    report(figures)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
