"""Idempotency-Key on every POST (API.md, "Conventions").

The caller is authenticated first: a request whose key is missing, wrong or revoked is handed to its
route untouched (which answers 401 where a key is needed), so it can neither replay a stored
response nor leave a row behind.

An authenticated request with a key runs in one transaction (`RequestTransaction`) that its handler's
units of work join. Its response, when 2xx, is written for replay into that same transaction just
before the one COMMIT: a committed change always has its recorded response, and a change that did
not commit holds no key. A 4xx changed nothing (its transaction is rolled back) and is recorded on
its own, so a repeat gets the same refusal. A 5xx or a crash records nothing: retry with the key.

While a request with the key runs, a repeat gets `409 idempotency_in_progress`: the key's lease is a
lock held by the running request (an advisory lock of its transaction on PostgreSQL, which the server
drops the moment a dead process's connection goes; a set of running keys in this process on the
embedded SQLite, whose single writer lock makes a repeat from another process wait and replay). Two
requests that still meet (other processes, or a lease lost to a restart) are settled by the record's
primary key: the second to write rolls back and replays the first.
"""

import asyncio
import hashlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db.transaction import MAX_ATTEMPTS, RetryTransaction, is_retryable
from app.db.unit import REQUEST_TRANSACTION, RequestTransaction
from app.errors import RequestInvalid, domain_problem
from app.idempotency import repository
from app.idempotency.repository import Record, StoredResponse
from app.kit.asgi import receive_body, replaying
from app.kit.clock import utcnow
from app.kit.crashpoints import crash_point
from app.kit.errors import Conflict, Unprocessable

MAX_KEY_LENGTH = 255
REPLAYED_HEADER = "Idempotent-Replayed"
# What a client needs to read a replayed body (and to find what a 201 created). Per-request headers
# such as X-Request-ID are the repeat's own.
REPLAYED_HEADERS = frozenset({"content-type", "location"})

# Who is calling: a stable identity of the authenticated caller, or None when the request carries
# no valid key. It may leave what it learnt in the scope's state for the route's own dependencies.
Authenticator = Callable[[Scope], Awaitable[str | None]]


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"
    title = "Idempotency key reused"


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"
    title = "Request with this idempotency key in progress"


@dataclass
class _BufferedResponse:
    """The app's response, held back until its transaction has committed."""

    messages: list[Message] = field(default_factory=list)
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)

    async def send(self, message: Message) -> None:
        self.messages.append(message)
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = _replayed_headers(message)
        elif message["type"] == "http.response.body":
            self.body.extend(message.get("body", b""))

    def stored(self) -> StoredResponse:
        return StoredResponse(self.status, self.headers, bytes(self.body))

    async def deliver(self, send: Send) -> None:
        for message in self.messages:
            await send(message)


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, *, ttl: timedelta, authenticate: Authenticator) -> None:
        self.app = app
        self.ttl = ttl
        self.authenticate = authenticate
        self._running: set[tuple[str, str]] = set()  # this process's leases (caller, key)

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
        body_messages = await receive_body(receive)
        assert body_messages is not None  # no limit given
        if body_messages[-1]["type"] == "http.disconnect":
            return  # the client left: nobody to run the request for
        caller = await self.authenticate(scope)
        if caller is None:
            await self.app(scope, replaying(body_messages, receive), send)
            return

        lease = (caller, key)
        if lease in self._running:
            await _in_progress(scope["path"])(scope, receive, send)
            return
        self._running.add(lease)
        try:
            call = _KeyedCall(self.app, scope, body_messages, receive, caller, key, self.ttl)
            await call.run_with_retries(send)
        finally:
            self._running.discard(lease)


class _InProgress:
    """Another request holds the key's lease."""


class _LostRace(RetryTransaction):
    """The record that beat ours expired before we could read it: run the request again."""


class _KeyedCall:
    """One authenticated request with an Idempotency-Key, run at most once to a committed end."""

    def __init__(
        self,
        app: ASGIApp,
        scope: Scope,
        body_messages: list[Message],
        receive: Receive,
        caller: str,
        key: str,
        ttl: timedelta,
    ) -> None:
        self.app = app
        self.scope = scope
        self.body_messages = body_messages
        self.receive = receive
        self.caller = caller
        self.key = key
        self.ttl = ttl
        self.request_hash = _request_hash(scope, body_messages)
        state = scope["app"].state
        self.engine: AsyncEngine = state.engine
        self.secret_key: str = state.settings.secret_key.get_secret_value()
        self.postgres = self.engine.dialect.name == "postgresql"

    async def run_with_retries(self, send: Send) -> None:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            transaction = RequestTransaction(self.engine)
            try:
                answer = await self._attempt(transaction)
            except Exception as error:
                if attempt == MAX_ATTEMPTS or not is_retryable(error):
                    raise
            else:
                await answer(send)
                return
            finally:
                await transaction.close()  # rolls back whatever did not commit
            # A serialisation failure or deadlock: nothing was written; run the request again.
            await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))

    async def _attempt(self, transaction: RequestTransaction) -> Callable[[Send], Awaitable[None]]:
        earlier = await self._claim(transaction)
        if earlier is not None:
            return self._answer_from(earlier)

        self.scope.setdefault("state", {})[REQUEST_TRANSACTION] = transaction
        response = _BufferedResponse()
        try:
            await self.app(self.scope, replaying(self.body_messages, self.receive), response.send)
        finally:
            self.scope["state"].pop(REQUEST_TRANSACTION, None)

        if 200 <= response.status < 300:
            if not await self._record(transaction, response.stored()):
                # Another request with the key committed first: ours must not.
                await transaction.close()
                winner = await self._find_on_its_own()
                if winner is None:  # it expired in between: run again
                    raise _LostRace()
                return self._answer_from(winner)
            crash_point("idempotency.before_commit")
            await transaction.commit()
            crash_point("idempotency.after_commit")
        elif 400 <= response.status < 500:
            # A refusal changed nothing: roll back whatever the handler began, then keep the
            # refusal so that a repeat gets it again.
            await transaction.close()
            async with self.engine.begin() as connection:
                await repository.record(
                    connection,
                    self.secret_key,
                    **self._identity(),
                    response=response.stored(),
                    now=utcnow(),
                    ttl=self.ttl,
                    request_hash=self.request_hash,
                )
        return response.deliver

    async def _claim(self, transaction: RequestTransaction) -> Record | _InProgress | None:
        """Take the key's lease and look for a finished request with it."""
        if self.postgres:
            locked, earlier = await repository.lock_and_find(
                await transaction.connection(), self.secret_key, **self._identity(), now=utcnow()
            )
            return earlier if locked else _InProgress()
        # SQLite: its writer lock is taken at BEGIN; the request's own transaction begins only
        # when its handler first needs it, so that a job run from the request can write meanwhile.
        return await self._find_on_its_own()

    async def _find_on_its_own(self) -> Record | None:
        async with self.engine.begin() as connection:
            return await repository.find(
                connection, self.secret_key, **self._identity(), now=utcnow()
            )

    async def _record(self, transaction: RequestTransaction, response: StoredResponse) -> bool:
        return await repository.record(
            await transaction.connection(),
            self.secret_key,
            **self._identity(),
            request_hash=self.request_hash,
            response=response,
            now=utcnow(),
            ttl=self.ttl,
        )

    def _identity(self) -> dict[str, str]:
        return {"caller": self.caller, "key": self.key}

    def _answer_from(self, held: Record | _InProgress) -> Callable[[Send], Awaitable[None]]:
        path = self.scope["path"]
        if isinstance(held, _InProgress):
            response = _in_progress(path)
        elif held.request_hash != self.request_hash:
            reused = IdempotencyKeyReused(
                "This Idempotency-Key was used for a different request; use a new key"
            )
            response = domain_problem(reused, path)
        else:
            response = Response(
                held.response.body,
                status_code=held.response.status,
                headers={**held.response.headers, REPLAYED_HEADER: "true"},
            )

        async def answer(send: Send) -> None:
            await response(self.scope, self.receive, send)

        return answer


def _in_progress(path: str) -> Response:
    in_progress = IdempotencyInProgress(
        "The first request with this Idempotency-Key is still running; retry shortly"
    )
    return domain_problem(in_progress, path)


def _idempotency_key(scope: Scope) -> str | None:
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    for name, value in scope["headers"]:
        if name == b"idempotency-key":
            return value.decode("latin-1")
    return None


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
