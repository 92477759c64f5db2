"""Real HTTP for tests where a bank is involved: the service and the bank simulator each served by
uvicorn on a free loopback port, in the test's event loop."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` (whose lifespan the caller runs) and yield its base URL. Idle connections are
    kept for the whole test: with uvicorn's 5 s default, a client reusing a connection after a
    long job can write to one the server is closing that moment, and read nothing back."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            timeout_keep_alive=600,
        )
    )
    # The test runner owns the signals; uvicorn must not take SIGINT from it.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
