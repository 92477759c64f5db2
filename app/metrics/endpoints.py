"""GET /metrics: the Prometheus text exposition, open unless METRICS_TOKEN is set."""

import hmac
from typing import ClassVar

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import SecretStr

from app.errors import documented_problem
from app.kit.errors import DomainError
from app.metrics.database import read_database_gauges
from app.metrics.exposition import exposition

router = APIRouter(tags=["operations"])


class MetricsUnauthorized(DomainError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Bearer"}


def _check_token(expected: SecretStr | None, authorization: str | None) -> None:
    """With METRICS_TOKEN set, only `Authorization: Bearer <token>` may scrape; compared in
    constant time, like the API's keys."""
    if expected is None:
        return
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.get_secret_value().encode()
    ):
        raise MetricsUnauthorized("send Authorization: Bearer <METRICS_TOKEN>")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "description": "The text exposition format",
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
        },
        401: documented_problem("METRICS_TOKEN is set and the request did not send it"),
    },
)
async def metrics(request: Request) -> Response:
    """Requests by route, ledger entries, and gauges read from the database for this scrape
    (docs/operations.md lists them). Needs `Authorization: Bearer <token>` only when the service
    has `METRICS_TOKEN` set."""
    settings = request.app.state.settings
    _check_token(settings.metrics_token, request.headers.get("authorization"))
    database = await read_database_gauges(request.app.state.engine)
    return Response(exposition(database), media_type=CONTENT_TYPE_LATEST)
