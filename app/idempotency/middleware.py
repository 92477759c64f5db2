"""Idempotency-Key on every POST (API.md, "Conventions").

The first request with a key claims it and runs; its response, when 2xx or 4xx, is stored and
replayed to any repeat of the same request (same caller, key, method, path and body). A 5xx or a
crash gives the key back, so the client can retry. Keys belong to a caller: one client's key never
replays another's response.
"""

import hashlib
from collections.abc import Callable
from datetime import timedelta

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import RequestInvalid, domain_problem
from app.idempotency import repository
from app.idempotency.repository import HeldKey, StoredResponse
from app.kit.clock import utcnow
from app.kit.errors import Conflict, Unprocessable

MAX_KEY_LENGTH = 255
REPLAYED_HEADER = "Idempotent-Replayed"
# What a client needs to read a replayed body (and to find what a 201 created). Per-request headers
# such as X-Request-ID are the repeat's own.
REPLAYED_HEADERS = frozenset({"content-type", "location"})

CallerIdentity = Callable[[Scope], str]


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"
    title = "Idempotency key reused"


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"
    title = "Request with this idempotency key in progress"


def caller_identity(scope: Scope) -> str:
    """A stable identity for the caller without knowing who it is: the sha256 of its bearer token,
    or "anonymous". The auth layer will hand the middleware its own, naming the authenticated key."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return hashlib.sha256(token.strip().encode()).hexdigest()
    return "anonymous"


class IdempotencyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        ttl: timedelta,
        identify_caller: CallerIdentity = caller_identity,
    ) -> None:
        self.app = app
        self.ttl = ttl
        self.identify_caller = identify_caller

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _idempotency_key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        if not 0 < len(key) <= MAX_KEY_LENGTH:
            invalid = RequestInvalid(
                "The Idempotency-Key header is not valid",
                errors=[
                    {
                        "loc": ["header", "Idempotency-Key"],
                        "msg": f"must be 1 to {MAX_KEY_LENGTH} characters long",
                    }
                ],
            )
            await domain_problem(invalid, scope["path"])(scope, receive, send)
            return

        # The whole body is needed to tell a repeat from a reuse before the handler may run; the
        # messages are then handed to the app as they came, so it still reads a stream.
        body_messages = await _receive_body(receive)
        if body_messages[-1]["type"] == "http.disconnect":
            return  # the client left: nobody to run the request for
        request_hash = _request_hash(scope, body_messages)

        engine = scope["app"].state.engine
        caller = self.identify_caller(scope)
        held = await repository.claim(
            engine, caller=caller, key=key, request_hash=request_hash, now=utcnow(), ttl=self.ttl
        )
        if held is not None:
            await _answer_from(held, request_hash, scope["path"])(scope, receive, send)
            return

        status = 0
        headers: dict[str, str] = {}
        body = bytearray()
        settled = False

        async def storing_send(message: Message) -> None:
            nonlocal status, headers, settled
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = _replayed_headers(message)
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    # Settled before the client has the last byte, so that once it has the
                    # response a repeat is replayed rather than told the first is in progress.
                    if _is_replayable(status):
                        response = StoredResponse(status, headers, bytes(body))
                        await repository.complete(engine, caller=caller, key=key, response=response)
                    else:
                        await repository.release(engine, caller=caller, key=key)
                    settled = True
            await send(message)

        try:
            await self.app(scope, _replaying(body_messages, receive), storing_send)
        finally:
            if not settled:  # the app raised, or never finished its response
                await repository.release(engine, caller=caller, key=key)


def _idempotency_key(scope: Scope) -> str | None:
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    for name, value in scope["headers"]:
        if name == b"idempotency-key":
            return value.decode("latin-1")
    return None


async def _receive_body(receive: Receive) -> list[Message]:
    """The request's messages up to its last body chunk, or up to the client's disconnect."""
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def _request_hash(scope: Scope, body_messages: list[Message]) -> str:
    # The raw path is percent-encoded, so it cannot run into the newline that ends the request line.
    path = scope.get("raw_path") or scope["path"].encode()
    digest = hashlib.sha256(b"%s %s?%s\n" % (scope["method"].encode(), path, scope["query_string"]))
    for message in body_messages:
        digest.update(message.get("body", b""))
    return digest.hexdigest()


def _replayed_headers(start: Message) -> dict[str, str]:
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in start.get("headers", [])
        if name.decode("latin-1").lower() in REPLAYED_HEADERS
    }


def _is_replayable(status: int) -> bool:
    """A 2xx or 4xx is the request's answer; a 5xx (or anything else) is no answer to keep."""
    return 200 <= status < 300 or 400 <= status < 500


def _answer_from(held: HeldKey, request_hash: str, path: str) -> Response:
    if held.request_hash != request_hash:
        reused = IdempotencyKeyReused(
            "This Idempotency-Key was used for a different request; use a new key"
        )
        return domain_problem(reused, path)
    if held.response is None:
        in_progress = IdempotencyInProgress(
            "The first request with this Idempotency-Key is still running; retry shortly"
        )
        return domain_problem(in_progress, path)
    return Response(
        held.response.body,
        status_code=held.response.status,
        headers={**held.response.headers, REPLAYED_HEADER: "true"},
    )
