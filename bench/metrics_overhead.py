"""What counting requests for /metrics costs an ordinary request, in Python CPU.

    python -m bench.metrics_overhead --requests 10000

Two measures, each the best of `--rounds` rounds (the least disturbed by whatever else the
machine runs):

- end to end: `--requests` GET /healthz through httpx's ASGI transport against the whole app, with
  the request-context middleware's metrics observer and without it (dropped before the app's first
  request), taking turns request by request. The difference is the counting's cost; the request's
  whole CPU (the httpx client's included) is printed beside it, for scale.
- alone: the request-context middleware around an ASGI app that answers at once, called directly,
  with the observer minus without it: the counting's own cost without the noise of a request.

/healthz touches no database, so nothing here waits: CPU time is the whole time.
"""

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import Receive, Scope, Send

from app.logging import RequestContextMiddleware
from app.metrics.middleware import RequestMetrics


def _app(with_metrics: bool) -> FastAPI:
    from app.config import Settings
    from app.main import create_app

    database = f"sqlite:///{tempfile.mkdtemp()}/unused.db"  # /healthz never opens it
    app = create_app(Settings(database_url=database, log_level="WARNING"))
    if not with_metrics:
        app.user_middleware = [
            Middleware(m.cls, *m.args, **{**m.kwargs, "observers": ()})
            if m.cls is RequestContextMiddleware
            else m
            for m in app.user_middleware
        ]
    return app


async def _through_the_apps(requests: int) -> tuple[float, float]:
    """CPU seconds per GET /healthz with the middleware and without it. The two apps take turns
    request by request, so that whatever else the machine does weighs on both alike."""
    spent = {True: 0.0, False: 0.0}
    clients = {
        with_metrics: httpx.AsyncClient(
            transport=httpx.ASGITransport(app=_app(with_metrics)), base_url="http://bench"
        )
        for with_metrics in spent
    }
    for client in clients.values():
        await client.get("/healthz")  # builds the middleware stack, warms the caches
    for _ in range(requests):
        for with_metrics, client in clients.items():
            started = time.process_time()
            await client.get("/healthz")
            spent[with_metrics] += time.process_time() - started
    for client in clients.values():
        await client.aclose()
    return spent[True] / requests, spent[False] / requests


async def _answer_at_once(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _called_directly(app: Callable[..., Coroutine[Any, Any, None]], calls: int) -> float:
    scope = {"type": "http", "method": "GET", "path": "/healthz", "headers": []}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        return None

    started = time.process_time()
    for _ in range(calls):
        await app(dict(scope), receive, send)
    return (time.process_time() - started) / calls


async def main(requests: int, rounds: int) -> None:
    with_metrics, without = zip(
        *[await _through_the_apps(requests) for _ in range(rounds)], strict=True
    )
    counted = RequestContextMiddleware(_answer_at_once, observers=[RequestMetrics().observe])
    uncounted = RequestContextMiddleware(_answer_at_once)
    alone = [await _called_directly(counted, requests * 10) for _ in range(rounds)]
    bare = [await _called_directly(uncounted, requests * 10) for _ in range(rounds)]

    us = 1e6
    print(f"multiprocess mode: {bool(os.environ.get('PROMETHEUS_MULTIPROC_DIR'))}")
    print(f"GET /healthz through the app, without metrics: {min(without) * us:8.1f} us CPU/request")
    print(
        f"GET /healthz through the app, with metrics:    {min(with_metrics) * us:8.1f} us CPU/request"
    )
    print(
        f"  difference:                                   {(min(with_metrics) - min(without)) * us:8.1f} us"
    )
    print(
        f"the counting alone:                             {(min(alone) - min(bare)) * us:8.1f} us CPU/request"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.requests, arguments.rounds))
