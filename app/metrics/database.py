"""Gauges read from the database when Prometheus scrapes: the inbox's lag, the outbox's age, open
alerts by level and open reconciliation breaks by type.

They describe the database, not a process, so they are read by whichever worker answers the scrape
and never stored per process: every worker would read the same numbers, and in multiprocess mode
a stored gauge would need a rule to combine the workers' copies. A scrape costs four aggregate
queries on one connection.
"""

import asyncio
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy.ext.asyncio import AsyncEngine

from app.kit.clock import as_utc, utcnow
from app.metrics import repository as repo
from app.models.institution import AlertLevel
from app.models.reconciliation import BreakType

# A scrape that waits on a stuck database would time out whole; the process's own metrics still
# matter then, so the database's part gives up first and says so in `database_gauges_up`.
READ_TIMEOUT_SECONDS = 2.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)  # hashed by identity: a registry keys its collectors
class DatabaseGauges:
    """One scrape's reading of the database, exposed as gauges (a collector of a registry made for
    that scrape). `read` is False when the database did not answer: only the `up` gauge is shown
    then, rather than zeros that would look like a healthy service."""

    read: bool
    inbox_lag_seconds: float = 0.0
    outbox_age_seconds: float = 0.0
    open_alerts: dict[str, int] = field(default_factory=dict)
    open_breaks: dict[str, int] = field(default_factory=dict)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "database_gauges_up", "1 when this scrape could read the database gauges, else 0"
        )
        up.add_metric([], 1.0 if self.read else 0.0)
        yield up
        if not self.read:
            return
        yield GaugeMetricFamily(
            "bank_inbox_lag_seconds",
            "Age of the oldest verified bank message not yet applied (0 when none waits)",
            value=self.inbox_lag_seconds,
        )
        yield GaugeMetricFamily(
            "bank_outbox_age_seconds",
            "Age of the oldest payment instruction not yet sent to its bank (0 when none waits)",
            value=self.outbox_age_seconds,
        )
        yield _by_label(
            "open_alerts", "Open alerts, by level", "level", self.open_alerts, AlertLevel
        )
        yield _by_label(
            "open_reconciliation_breaks",
            "Open reconciliation breaks, by type",
            "type",
            self.open_breaks,
            BreakType,
        )


def _by_label(
    name: str, documentation: str, label: str, counts: dict[str, int], known: Iterable[str]
) -> GaugeMetricFamily:
    """Every known value gets its series, 0 included, so that a series never vanishes when its
    last alert closes (an alert rule on it would see "no data" rather than 0)."""
    gauge = GaugeMetricFamily(name, documentation, labels=[label])
    for value, count in sorted({**dict.fromkeys(known, 0), **counts}.items()):
        gauge.add_metric([value], count)
    return gauge


def _age_seconds(since: datetime | None, now: datetime) -> float:
    return 0.0 if since is None else max(0.0, (now - as_utc(since)).total_seconds())


async def read_database_gauges(engine: AsyncEngine) -> DatabaseGauges:
    """Read the gauges now, or report that the database did not answer in time."""
    try:
        async with asyncio.timeout(READ_TIMEOUT_SECONDS), engine.connect() as connection:
            oldest_message = await repo.oldest_unapplied_message(connection)
            oldest_instruction = await repo.oldest_unsent_instruction(connection)
            alerts = await repo.open_alerts_by_level(connection)
            breaks = await repo.open_breaks_by_type(connection)
    except Exception as error:
        # Whatever the cause (down, slow, bad credentials), the answer is "could not read".
        logger.warning("metrics: database gauges unavailable: %r", error)
        return DatabaseGauges(read=False)
    now = utcnow()
    return DatabaseGauges(
        read=True,
        inbox_lag_seconds=_age_seconds(oldest_message, now),
        outbox_age_seconds=_age_seconds(oldest_instruction, now),
        open_alerts=alerts,
        open_breaks=breaks,
    )
