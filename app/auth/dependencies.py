"""FastAPI dependencies: who is calling, and may this role call this endpoint.

A missing or unknown key is 401. Anything outside the caller's scope is 404, so the caller never
learns it exists: an object of another institution, enrollment or jurisdiction (decided by the code
that looks it up), and an endpoint that is not for the caller's role at all (decided here), which
a caller could otherwise use to probe for objects through an endpoint it may not use.
"""

import hashlib
from collections.abc import Awaitable, Callable
from typing import Annotated, ClassVar, Generic, TypeVar, cast

from fastapi import Depends, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Scope

from app.audit.context import Actor, current_actor
from app.auth import cache as key_cache
from app.auth.keys import key_hash, same_key
from app.auth.principal import (
    AdminPrincipal,
    InstitutionPrincipal,
    ParentPrincipal,
    Principal,
    RegulatorPrincipal,
)
from app.auth.service import principal_for_digest
from app.config import Settings
from app.db.unit import Database
from app.kit.errors import DomainError, NotFound
from app.models.api_key import Role

PRINCIPAL = "principal"  # the authenticated caller, in the request's state


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Bearer"}


class NotForRole(NotFound):
    """404, like any object out of scope; the detail says why, to the caller's own key only."""


def _bearer_token(authorization: str | None) -> str | None:
    """The key in an Authorization header value `Bearer <key>`, else None."""
    if not authorization:
        return None
    scheme, _, rest = authorization.partition(" ")
    token = rest.strip()
    return token if scheme.lower() == "bearer" and token else None


async def _principal_for_token(
    settings: Settings, engine: AsyncEngine, token: str
) -> Principal | None:
    admin_key = settings.admin_api_key
    if admin_key is not None and same_key(token, admin_key.get_secret_value()):
        return AdminPrincipal(key_id=None)
    digest = key_hash(settings.secret_key.get_secret_value(), token)
    principal = key_cache.keys.get(digest)
    if principal is None:
        principal = await Database(engine, settings).read(
            lambda session: principal_for_digest(session, digest)
        )
        if principal is not None:
            key_cache.keys.put(digest, principal, tag=principal.key_id)
    return principal


async def authenticate(request: Request) -> Principal:
    principal: Principal | None = getattr(request.state, PRINCIPAL, None)
    if principal is None:  # else authenticated by the idempotency layer, or an earlier dependency
        token = _bearer_token(request.headers.get("authorization"))
        if token is None:
            raise Unauthorized("send Authorization: Bearer <api key>")
        principal = await _principal_for_token(
            request.app.state.settings, request.app.state.engine, token
        )
        if principal is None:
            raise Unauthorized("the API key is unknown or revoked")
        setattr(request.state, PRINCIPAL, principal)
    # What the request moves in the ledger is moved by this key (the audit trail's money side).
    current_actor.set(Actor(str(principal.role), str(principal.key_id or "environment")))
    return principal


async def caller_of(scope: Scope) -> str | None:
    """For the idempotency layer: the caller's identity (the sha256 of its key) once the key is
    known and live, else None. The principal is kept in the request's state for `authenticate`."""
    token = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            token = _bearer_token(value.decode("latin-1")) or token
    if token is None:
        return None
    state = scope["app"].state
    principal = await _principal_for_token(state.settings, state.engine, token)
    if principal is None:
        return None
    scope.setdefault("state", {})[PRINCIPAL] = principal
    return hashlib.sha256(token.encode()).hexdigest()


P = TypeVar("P", bound=Principal)


class _Caller(SecurityBase, Generic[P]):
    """The whole authentication of a route in one dependency level: it reads the Authorization
    header itself, finds the caller and admits only `admits`, where a chain require -> authenticate
    -> HTTPBearer resolved three (FastAPI's resolution of each is a cost of every request). Being
    a `SecurityBase` with HTTPBearer's model and name, it declares the same security scheme, so
    /docs still offers "Authorize"; errors stay ours (401 problem+json with WWW-Authenticate)."""

    def __init__(self, admits: Callable[[Principal], bool]) -> None:
        self.model = HTTPBearerModel(description="An API key: `Bearer pgk_...`.")
        self.scheme_name = "HTTPBearer"
        self._admits = admits

    async def __call__(self, request: Request) -> P:
        principal = await authenticate(request)
        if not self._admits(principal):
            raise NotForRole(f"nothing here for a {principal.role} key")
        return cast(P, principal)


CurrentPrincipal = Annotated[Principal, Depends(_Caller[Principal](lambda principal: True))]


def require(*roles: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency admitting only callers of `roles`."""
    return _Caller[Principal](lambda principal: principal.role in roles)


def require_one(kind: type[P]) -> Callable[[Request], Awaitable[P]]:
    """A dependency admitting only callers of one role, handed on as that role's type."""
    return _Caller[P](lambda principal: isinstance(principal, kind))


Admin = Annotated[AdminPrincipal, Depends(require_one(AdminPrincipal))]
Regulator = Annotated[RegulatorPrincipal, Depends(require_one(RegulatorPrincipal))]
InstitutionCaller = Annotated[InstitutionPrincipal, Depends(require_one(InstitutionPrincipal))]
Parent = Annotated[ParentPrincipal, Depends(require_one(ParentPrincipal))]
AdminOrRegulator = Annotated[Principal, Depends(require(Role.admin, Role.regulator))]
# Who sees institutions' objects (the operator, a regulator, an institution), each within its scope.
InstitutionViewer = Annotated[
    Principal, Depends(require(Role.admin, Role.regulator, Role.institution))
]
