"""Requests and their durations by route template, counted as each request ends.

A route template (`/v1/enrollments/{enrollment_id}/lessons`), never the raw path, labels a series,
and an unknown method is "other": a caller cannot mint new series by varying what it sends.
"""

from prometheus_client import Counter, Histogram
from starlette.types import Scope

from app.kit.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS

UNMATCHED = "unmatched"  # a path no route took: a 404 of the router itself
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_Series = tuple[Counter, Histogram]


def route_of(scope: Scope) -> str:
    """The template of the route that took the request. The router writes the route it chose into
    the scope it was given (the same dict this middleware passed on), so reading it afterwards
    costs nothing; a 405 keeps the route too, as the router records its partial match."""
    return getattr(scope.get("route"), "path", UNMATCHED)


class RequestMetrics:
    """Counts each HTTP request once it is over: `http_requests_total{method,route,status}` and
    `http_request_duration_seconds{method,route}`. `observe` is handed to the request-context
    middleware (app.logging), which times every request and sees its status for its log line
    already: one layer does both."""

    def __init__(self) -> None:
        # The labelled children, found once per (method, route, status): the library's `labels`
        # validates and locks on every call, which an ordinary request need not pay for.
        self._series: dict[tuple[str, str, int], _Series] = {}

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        requests, duration = self._series_of(scope, status)
        requests.inc()
        duration.observe(seconds)

    def _series_of(self, scope: Scope, status: int) -> _Series:
        method = scope["method"] if scope["method"] in _METHODS else "other"
        key = (method, route_of(scope), status)
        series = self._series.get(key)
        if series is None:
            series = (
                HTTP_REQUESTS.labels(method, key[1], str(status)),
                HTTP_REQUEST_SECONDS.labels(method, key[1]),
            )
            self._series[key] = series
        return series
