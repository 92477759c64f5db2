"""JSON logs on stdout, one line per request, every line of a request tagged with its request id
and its correlation id.

The request id names one request. The correlation id names the piece of work a caller is doing
across services: taken from the caller's X-Correlation-ID, else the request id, and sent on with
our own calls to banks (`correlation_headers`), so that one id finds the lines on every side.
"""

import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonEncoder, JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
CORRELATION_ID_HEADER = "X-Correlation-ID"
_ID_HEADERS = (b"x-request-id", b"x-correlation-id")
# A caller's id is echoed into our logs and headers, so only short, plain ones are taken.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
JSON_HANDLER_NAME = "prepaid-guard-json"

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
request_logger = logging.getLogger("app.request")


def current_request_id() -> str | None:
    return _request_id.get()


def current_correlation_id() -> str | None:
    return _correlation_id.get()


def correlation_headers() -> dict[str, str]:
    """The header that carries the current correlation id on an outgoing call; none outside a
    request."""
    correlation_id = _correlation_id.get()
    return {} if correlation_id is None else {CORRELATION_ID_HEADER: correlation_id}


class RequestIdFilter(logging.Filter):
    """Adds the request and correlation ids, when there are some, to every record logged while a
    request runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = _request_id.get()
        if request_id is not None:
            record.request_id = request_id
            record.correlation_id = _correlation_id.get()
        return True


class LeanJsonFormatter(JsonFormatter):
    """python-json-logger's JSON lines, the same text (a property test holds them equal), built
    with less work for an ordinary record (a plain message, no exception or stack), which is every
    request's line: the fields are taken from the record in one pass and encoded by one encoder
    made once, where the library's general path renames each field and makes an encoder per line.
    Anything else takes the library's path."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assert self.json_encoder is JsonEncoder and self.timestamp is True  # what is mirrored
        self._encode = JsonEncoder(ensure_ascii=self.json_ensure_ascii).encode
        self._skipped = frozenset(self._skip_fields)
        self._fields = tuple((field, self._get_rename(field)) for field in self._required_fields)
        self._timestamp = self._get_rename("timestamp")
        self._ordinary = not (
            self.defaults or self.static_fields or self.rename_fields_keep_missing
        )

    def format(self, record: logging.LogRecord) -> str:
        if (
            not self._ordinary
            or record.exc_info
            or record.exc_text
            or record.stack_info
            or not isinstance(record.msg, str)
        ):
            return super().format(record)
        record.message = record.getMessage()
        attributes = record.__dict__
        line = {name: attributes.get(field) for field, name in self._fields}
        skipped = self._skipped
        renamed = self.rename_fields
        for key, value in attributes.items():
            if key not in skipped and not key.startswith("_"):
                line[renamed.get(key, key)] = value
        line[self._timestamp] = datetime.fromtimestamp(record.created, tz=UTC)
        return self.prefix + self._encode(line)


def configure_logging(level: str) -> None:
    """Send every log line, uvicorn's included, as JSON to stdout.

    Safe to call more than once (each create_app does): our handler is replaced, not added again.
    """
    handler = logging.StreamHandler(sys.stdout)
    handler.set_name(JSON_HANDLER_NAME)
    handler.setFormatter(
        LeanJsonFormatter(
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


def _sane(offered: bytes | None) -> str | None:
    if offered is None:
        return None
    candidate = offered.decode("latin-1")
    return candidate if _SANE_REQUEST_ID.fullmatch(candidate) else None


def _ids_from(scope: Scope) -> tuple[str, str]:
    """The request's id and correlation id: each the caller's first one when it is sane; else a new
    request id, which is also the correlation id of a caller that sent none (or an odd one)."""
    offered: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in _ID_HEADERS:
            offered.setdefault(name, value)
    request_id = _sane(offered.get(b"x-request-id")) or uuid.uuid4().hex
    return request_id, _sane(offered.get(b"x-correlation-id")) or request_id


# Told of each request once it is over: its scope (the route the router chose in it), the status
# its caller got, and its duration in seconds (app.metrics counts requests this way).
RequestObserver = Callable[[Scope, int, float], None]


def _log_request(scope: Scope, status: int, seconds: float) -> None:
    """The request's line, made and handled as `request_logger.info` would, without looking up
    the caller's source line first (a walk up the stack that no field of the JSON line shows)."""
    extra = {
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
    }
    record = request_logger.makeRecord(
        request_logger.name, logging.INFO, __file__, 0, "request", (), None, extra=extra
    )
    request_logger.handle(record)


class RequestContextMiddleware:
    """Outermost layer: gives the request its ids, echoes them in the response and logs the request
    once it is over, with its status and duration, which it also hands to its observers."""

    def __init__(self, app: ASGIApp, observers: Sequence[RequestObserver] = ()) -> None:
        self.app = app
        self.observers = tuple(observers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id, correlation_id = _ids_from(scope)
        token = _request_id.set(request_id)
        correlation_token = _correlation_id.set(correlation_id)
        id_headers = [
            (b"x-request-id", request_id.encode()),
            (b"x-correlation-id", correlation_id.encode()),
        ]
        # Stays 500 if the app fails before answering: that is what the client will see.
        status = 500
        started = time.perf_counter()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), *id_headers]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            seconds = time.perf_counter() - started
            for observe in self.observers:
                observe(scope, status, seconds)
            if request_logger.isEnabledFor(logging.INFO):
                _log_request(scope, status, seconds)
            _correlation_id.reset(correlation_token)
            _request_id.reset(token)
