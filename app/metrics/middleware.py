"""Requests and their durations by route template, counted by a pure ASGI middleware.

A route template (`/v1/enrollments/{enrollment_id}/lessons`), never the raw path, labels a series,
and an unknown method is "other": a caller cannot mint new series by varying what it sends.
"""

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.kit.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS

UNMATCHED = "unmatched"  # a path no route took: a 404 of the router itself
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_Series = tuple[Counter, Histogram]


def route_of(scope: Scope) -> str:
    """The template of the route that took the request. The router writes the route it chose into
    the scope it was given (the same dict this middleware passed on), so reading it afterwards
    costs nothing; a 405 keeps the route too, as the router records its partial match."""
    return getattr(scope.get("route"), "path", UNMATCHED)


class HttpMetricsMiddleware:
    """Counts each HTTP request once it is over: `http_requests_total{method,route,status}` and
    `http_request_duration_seconds{method,route}`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The labelled children, found once per (method, route, status): the library's `labels`
        # validates and locks on every call, which an ordinary request need not pay for.
        self._series: dict[tuple[str, str, int], _Series] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Stays 500 if the app fails before answering: that is what the client will see.
        status = 500
        started = time.perf_counter()

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            requests, seconds = self._series_of(scope, status)
            requests.inc()
            seconds.observe(time.perf_counter() - started)

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
