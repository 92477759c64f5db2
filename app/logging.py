"""JSON logs on stdout, one line per request, every line of a request tagged with its request id."""

import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is echoed into our logs and headers, so only short, plain ones are taken.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
JSON_HANDLER_NAME = "prepaid-guard-json"

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
request_logger = logging.getLogger("app.request")


def current_request_id() -> str | None:
    return _request_id.get()


class RequestIdFilter(logging.Filter):
    """Adds the request id, when there is one, to every record logged while a request runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = _request_id.get()
        if request_id is not None:
            record.request_id = request_id
        return True


def configure_logging(level: str) -> None:
    """Send every log line, uvicorn's included, as JSON to stdout.

    Safe to call more than once (each create_app does): our handler is replaced, not added again.
    """
    handler = logging.StreamHandler(sys.stdout)
    handler.set_name(JSON_HANDLER_NAME)
    handler.setFormatter(
        JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            timestamp=True,
            rename_fields={"levelname": "level"},
            # uvicorn repeats its message with terminal colour codes; the plain one is enough.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )
    )
    handler.addFilter(RequestIdFilter())

    root = logging.getLogger()
    for existing in [h for h in root.handlers if h.get_name() == JSON_HANDLER_NAME]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())

    # uvicorn installs plain-text handlers of its own before it imports the app; route its lines
    # through ours instead. Its access log would repeat our request line, so it is switched off.
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True


def _request_id_from(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SANE_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Outermost layer: gives the request its id, echoes it in the response and logs the request
    once it is over, with its status and duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = _request_id_from(scope)
        token = _request_id.set(request_id)
        # Stays 500 if the app fails before answering: that is what the client will see.
        status = 500
        started = time.perf_counter()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            request_logger.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            _request_id.reset(token)
