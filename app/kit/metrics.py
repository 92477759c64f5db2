"""The process's own Prometheus instruments, in one place, low enough for any package to count.

Each uvicorn worker counts in its own memory, or, when PROMETHEUS_MULTIPROC_DIR is set before the
process starts, in files of that directory that the scraping worker adds up (docs/operations.md).
Gauges read from the database are not here: app/metrics computes them at scrape time.
"""

from prometheus_client import Counter, Histogram, disable_created_metrics

# A `_created` timestamp beside every counter and histogram series doubles what is scraped and
# stored for nothing a dashboard here uses.
disable_created_metrics()

# Finer than the library's default at the low end: an ordinary request's budget is a few ms.
REQUEST_SECONDS_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

HTTP_REQUESTS = Counter(
    "http_requests",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by method and route template",
    ["method", "route"],
    buckets=REQUEST_SECONDS_BUCKETS,
)
# Counted after the write, before the commit: cheap, and a rollback is rare enough that the rate
# stays a faithful measure of the ledger's load. The help text says so, for whoever graphs it.
LEDGER_ENTRIES = Counter(
    "ledger_entries",
    "Ledger entries written, including any whose transaction later rolled back",
)
