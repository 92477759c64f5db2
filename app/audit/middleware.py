"""Where a request comes from, for the audit trail: a pure ASGI middleware (no task of its own, so
what it sets is seen by the endpoint and by everything the endpoint calls)."""

from starlette.types import ASGIApp, Receive, Scope, Send

from app.audit.context import client_address, current_actor


def address_of(scope: Scope, trusted_proxies: frozenset[str]) -> str | None:
    """The TCP peer's address; when the peer is a trusted proxy, the nearest address in
    X-Forwarded-For that is not itself a trusted proxy (the ones further left are the client's own
    claims, which anyone can forge)."""
    peer = scope.get("client")
    address = peer[0] if peer else None
    if address is None or address not in trusted_proxies:
        return address
    forwarded = [
        hop.strip()
        for name, value in scope.get("headers", [])
        if name == b"x-forwarded-for"
        for hop in value.decode("latin-1").split(",")
        if hop.strip()
    ]
    for hop in reversed(forwarded):
        if hop not in trusted_proxies:
            return hop[:64]
    return address


class ClientAddressMiddleware:
    def __init__(self, app: ASGIApp, trusted_proxies: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.trusted_proxies = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        address = client_address.set(address_of(scope, self.trusted_proxies))
        actor = current_actor.set(None)  # authentication names it; nothing left from elsewhere
        try:
            await self.app(scope, receive, send)
        finally:
            current_actor.reset(actor)
            client_address.reset(address)
