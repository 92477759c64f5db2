"""Probes for the orchestrator: /healthz says the process is alive, /readyz that it can serve.

Whoever starts the app may hold readiness while it prepares something (`prepaid-guard serve` seeds
its demo through the running API): /readyz answers 503 until then, and /healthz still says alive,
so that an orchestrator waits for the work instead of restarting the process in the middle of it.
"""

import asyncio
import logging
from typing import Literal

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel
from sqlalchemy import text

from app.errors import documented_problem
from app.kit.errors import DomainError

# A probe that hangs is worse than one that fails: the orchestrator waits on it.
READINESS_TIMEOUT_SECONDS = 2.0

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


class DatabaseUnavailable(DomainError):
    status = 503
    code = "database_unavailable"
    title = "Database unavailable"


class NotReady(DomainError):
    status = 503
    code = "not_ready"
    title = "Not ready"


def hold_readiness(app: FastAPI, reason: str) -> None:
    """/readyz answers 503 `not_ready` with `reason` until `release_readiness`."""
    app.state.not_ready = reason


def release_readiness(app: FastAPI) -> None:
    app.state.not_ready = None


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    database: Literal["ok"] = "ok"


@router.get(
    "/healthz", summary="Liveness: the process is up", response_description="The process is alive"
)
async def healthz() -> Liveness:
    """Touches nothing, so a slow database never gets a live process restarted."""
    return Liveness()


@router.get(
    "/readyz",
    summary="Readiness: started and the database answers",
    response_description="Ready to serve requests",
    responses={
        503: documented_problem(
            "Still starting (`not_ready`, e.g. while the demo is seeded), or the database does "
            "not answer (`database_unavailable`)"
        )
    },
)
async def readyz(request: Request) -> Readiness:
    """Runs `SELECT 1` once started; while either fails, the instance should get no traffic."""
    if reason := getattr(request.app.state, "not_ready", None):
        raise NotReady(reason)
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            async with request.app.state.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except Exception as error:
        # Whatever the cause (refused, timed out, bad credentials), the answer is "not ready".
        logger.warning("readiness check failed: %r", error)
        raise DatabaseUnavailable("The database did not answer SELECT 1") from error
    return Readiness()
