"""The address the current request came from, set once per request by middleware, so that what
records an action need not be handed the request."""

from contextvars import ContextVar

client_address: ContextVar[str | None] = ContextVar("client_address", default=None)
