"""One scrape's text: the processes' counters and histograms, then the database gauges.

With several uvicorn workers a scrape reaches one of them, at random; each keeps its own counts.
So when PROMETHEUS_MULTIPROC_DIR is set (it must be before the workers start, as prometheus_client
decides where values live when it is first imported), every worker writes its values to files
there and the scraping worker adds up all of them. Without it, a process answers for itself.
"""

import os

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from app.metrics.database import DatabaseGauges

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def exposition(database: DatabaseGauges) -> bytes:
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        MultiProcessCollector(registry)  # registers itself
    else:
        registry.register(REGISTRY)  # a registry is a collector too: this process's own
    registry.register(database)
    return generate_latest(registry)
