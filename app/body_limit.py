"""Request bodies are read whole before any handler runs, and refused early:
- above a limit (1 MiB; a bank's daily statement 64 MiB) with 413, by the declared Content-Length when there is one, and by counting
  what arrives when there is not (a chunked body), on every route;
- a JSON body that is not UTF-8 with 422 `validation_error` (RFC 8259 JSON is UTF-8).
"""

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import RequestInvalid, domain_problem, problem_response
from app.kit.asgi import receive_body, replaying

MAX_BODY_BYTES = 1024 * 1024
# A bank's statement of a busy escrow account is larger than any request of the API.
LARGER_BODIES = ((re.compile(r"/v1/banks/[^/]+/statements"), 64 * 1024 * 1024),)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        limit = self._limit(scope["path"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send, limit)
            return
        messages = await receive_body(receive, limit)
        if messages is None:
            await self._too_large(scope, receive, send, limit)
            return
        if _is_json(headers.get(b"content-type", b"")):
            body = b"".join(message.get("body", b"") for message in messages)
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as error:
                invalid = RequestInvalid(
                    "The request body is not UTF-8",
                    errors=[{"loc": ["body"], "msg": f"not UTF-8 at byte {error.start}"}],
                )
                await domain_problem(invalid, scope["path"])(scope, receive, send)
                return
        await self.app(scope, replaying(messages, receive), send)

    def _limit(self, path: str) -> int:
        for pattern, limit in LARGER_BODIES:
            if pattern.fullmatch(path):
                return limit
        return self.max_bytes

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem_response(
            status=413,
            code="payload_too_large",
            title="Payload too large",
            detail=f"request bodies here are limited to {limit} bytes",
            instance=scope.get("path", ""),
        )
        await response(scope, receive, send)


def _is_json(content_type: bytes) -> bool:
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or media_type.endswith(b"+json")
