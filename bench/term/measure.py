"""How the replay measures: latencies per operation within each phase, the CPU of the service's
processes and the bank's from /proc, and the HTTP clients that time every request."""

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bench.term.checks import ReplayFailed

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process so far (/proc/<pid>/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise ReplayFailed(f"no VmHWM for process {pid}")


def percentile(ordered: Sequence[float], share: float) -> float:
    """Nearest rank: the smallest value at or above `share` of them."""
    rank = max(1, -(-len(ordered) * share // 1))
    return ordered[int(rank) - 1]


@dataclass
class OpFigures:
    phase: str
    operation: str
    count: int
    items: int
    per_second: float
    items_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class PhaseFigures:
    phase: str
    seconds: float
    service_cpu_s: float
    bank_cpu_s: float
    # When the phase is one operation: the service's CPU per item (a request, or a batch's record).
    service_cpu_ms_per_item: float | None = None


class Stats:
    """Latencies per operation, attributed to the phase running, and each phase's wall time and
    the CPU its processes spent in it."""

    def __init__(self, service_pids: list[int], bank_pid: int) -> None:
        self.service_pids, self.bank_pid = service_pids, bank_pid
        self._phase = "start"
        self._latencies: dict[tuple[str, str], list[float]] = {}
        self._items: dict[tuple[str, str], int] = {}
        self.phases: list[PhaseFigures] = []
        self.operations: list[OpFigures] = []

    def record(self, operation: str, seconds: float, items: int = 1) -> None:
        key = (self._phase, operation)
        self._latencies.setdefault(key, []).append(seconds)
        self._items[key] = self._items.get(key, 0) + items

    def _cpu(self) -> tuple[float, float]:
        return sum(map(cpu_seconds, self.service_pids)), cpu_seconds(self.bank_pid)

    @contextlib.asynccontextmanager
    async def phase(self, name: str) -> AsyncIterator[None]:
        self._phase = name
        service_before, bank_before = self._cpu()
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
        service_after, bank_after = self._cpu()
        operations = [
            self._figures(phase, operation, latencies, elapsed)
            for (phase, operation), latencies in self._latencies.items()
            if phase == name
        ]
        service_cpu = service_after - service_before
        figures = PhaseFigures(
            name,
            round(elapsed, 2),
            round(service_cpu, 2),
            round(bank_after - bank_before, 2),
            round(service_cpu * 1000 / operations[0].items, 2) if len(operations) == 1 else None,
        )
        self.phases.append(figures)
        self.operations += operations
        print(
            f"{name}: {figures.seconds} s, service CPU {figures.service_cpu_s} s, "
            f"bank CPU {figures.bank_cpu_s} s",
            flush=True,
        )

    def _figures(
        self, phase: str, operation: str, latencies: list[float], elapsed: float
    ) -> OpFigures:
        ordered = sorted(latencies)
        items = self._items[(phase, operation)]

        def ms(value: float) -> float:
            return round(value * 1000, 1)

        return OpFigures(
            phase=phase,
            operation=operation,
            count=len(ordered),
            items=items,
            per_second=round(len(ordered) / elapsed, 1),
            items_per_second=round(items / elapsed, 1),
            p50_ms=ms(percentile(ordered, 0.50)),
            p95_ms=ms(percentile(ordered, 0.95)),
            p99_ms=ms(percentile(ordered, 0.99)),
            max_ms=ms(ordered[-1]),
        )


class Endpoint:
    """Requests to one party (the service's processes in turn, or the bank), each timed as an
    operation and checked for its status."""

    def __init__(self, ports: list[int], connections: int, stats: Stats) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._clients = [
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=600, trust_env=False
            )
            for port in ports
        ]
        self._turn = itertools.cycle(self._clients)
        self._stats = stats

    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        key: str | None = None,
        body: Any = None,
        expect: tuple[int, ...] = (200, 201),
        items: int = 1,
    ) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        started = time.perf_counter()
        response = await next(self._turn).request(method, path, json=body, headers=headers)
        self._stats.record(operation, time.perf_counter() - started, items)
        if response.status_code not in expect:
            raise ReplayFailed(f"{method} {path}: {response.status_code} {response.text[:400]}")
        return response.json()

    async def pages(self, operation: str, path: str, key: str, **params: Any) -> list[Any]:
        """Every item of a paginated list."""
        items: list[Any] = []
        cursor = None
        while True:
            query = {**params, "limit": 500, **({"cursor": cursor} if cursor else {})}
            page = await self.call(operation, "GET", f"{path}?{httpx.QueryParams(query)}", key)
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


async def fan_out(
    items: Sequence[T], work: Callable[[T], Awaitable[None]], connections: int
) -> None:
    """`work` on every item, `connections` at a time; the first failure stops the others."""
    pending = iter(items)

    async def worker() -> None:
        for item in pending:
            await work(item)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(connections, len(items))):
                group.create_task(worker())
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
