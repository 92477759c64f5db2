"""The simulator as a FastAPI app: bank-facing endpoints under /banks/{slug}, control under /sim."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bank_simulator import bank_api, control
from bank_simulator.bank import SimError, Simulator
from bank_simulator.config import SimulatorConfig


def create_simulator(
    config: SimulatorConfig, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """`transport`, when given, carries the simulator's calls to the service (tests pass an ASGI
    transport to a service app in the same process)."""
    client = httpx.AsyncClient(
        transport=transport, timeout=config.delivery_timeout_seconds, trust_env=False
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = FastAPI(title="PrepaidGuard bank simulator", lifespan=lifespan)
    app.state.simulator = Simulator(config, client)
    app.include_router(bank_api.router)
    app.include_router(control.router)

    @app.exception_handler(SimError)
    async def sim_error(_: Request, error: SimError) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, status_code=error.status)

    return app
