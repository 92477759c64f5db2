"""Every error leaves as RFC 9457 application/problem+json, rendered here and nowhere else.

Members: `type`, `title`, `status`, `detail`, a machine-readable `code`, `instance` (the request
path) and `request_id`; a domain error's `extra` fields are added as extension members.
"""

import logging
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, DisconnectionError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.kit.errors import DomainError
from app.logging import current_request_id

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://prepaid-guard.dev/problems/"

logger = logging.getLogger(__name__)


class Problem(BaseModel):
    """RFC 9457 problem details; the shape of every error response."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description=f"`{PROBLEM_TYPE_BASE}<code>`")
    title: str = Field(description="Short summary of the kind of problem")
    status: int = Field(description="The HTTP status code")
    detail: str = Field(description="What went wrong with this request")
    code: str = Field(description="Machine-readable error code, stable across versions")
    instance: str = Field(description="The request path")
    request_id: str | None = Field(description="Quote it when reporting the problem")


def documented_problem(description: str) -> dict[str, Any]:
    """An OpenAPI response entry for an error, which is always problem+json."""
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": Problem.model_json_schema()}},
    }


# Documented on every operation, in place of FastAPI's default validation error schema.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": documented_problem("The request was refused; `code` says why"),
    "5XX": documented_problem("The service failed or is unavailable"),
}


class RequestInvalid(DomainError):
    """The request's payload, parameters or headers do not have the required shape.

    `errors` lists each problem as `{loc, msg}`, `loc` being the path to the offending value."""

    status = 422
    code = "validation_error"
    title = "Invalid request"


class InternalError(DomainError):
    status = 500
    code = "internal_error"
    title = HTTPStatus.INTERNAL_SERVER_ERROR.phrase


class DatabaseUnavailable(DomainError):
    status = 503
    code = "database_unavailable"
    title = HTTPStatus.SERVICE_UNAVAILABLE.phrase
    headers: ClassVar[dict[str, str]] = {"Retry-After": "1"}


def _database_unreachable(error: Exception) -> bool:
    """The database went away (a restart, a cut connection, the server refusing connections), as
    opposed to a statement it refused: a retry may pass."""
    if isinstance(error, DisconnectionError):
        return True
    if isinstance(error, DBAPIError):
        return error.connection_invalidated
    return isinstance(error, (ConnectionError, OSError))


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str,
    extra: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = {
        # Extension members first, so none of them can overwrite a standard member; encoded because
        # domain errors carry ids and times as they are (UUID, datetime).
        **jsonable_encoder(extra or {}),
        "type": f"{PROBLEM_TYPE_BASE}{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
        "request_id": current_request_id(),
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def domain_problem(error: DomainError, instance: str) -> Response:
    return problem_response(
        status=error.status,
        code=error.code,
        title=error.title,
        detail=error.detail,
        instance=instance,
        extra=error.extra,
        headers=error.headers or None,
    )


async def _domain_error_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, DomainError)
    return domain_problem(error, request.url.path)


async def _validation_error_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    errors = [{"loc": list(item["loc"]), "msg": item["msg"]} for item in error.errors()]
    invalid = RequestInvalid(f"The request is not valid: {len(errors)} error(s)", errors=errors)
    return domain_problem(invalid, request.url.path)


async def _http_error_handler(request: Request, error: Exception) -> Response:
    """Errors Starlette raises itself (no route, wrong method, ...), and any HTTPException."""
    assert isinstance(error, StarletteHTTPException)
    status = HTTPStatus(error.status_code)
    return problem_response(
        status=status.value,
        # "Method Not Allowed" -> "method_not_allowed": the status is the whole story.
        code=re.sub(r"[^a-z0-9]+", "_", status.phrase.lower()),
        title=status.phrase,
        detail=error.detail,
        instance=request.url.path,
        headers=error.headers,
    )


class UnhandledErrorMiddleware:
    """Turns an exception nothing else handled into a 500 problem, logged with its traceback.

    It sits inside the request-context middleware, so the log line and the problem carry the
    request id and the response its X-Request-ID header, and it answers rather than re-raising,
    so the server does not log the same failure again without our context."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as failure:
            logger.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if response_started:
                raise  # too late for a problem response; the server drops the connection
            error: DomainError
            if _database_unreachable(failure):
                error = DatabaseUnavailable(
                    "The database cannot be reached; retry shortly, with the same Idempotency-Key "
                    "for a POST, so that a change that did reach it is not made twice"
                )
            else:
                error = InternalError(
                    "The service failed to handle the request; quote the request id when "
                    "reporting it"
                )
            await domain_problem(error, scope["path"])(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
