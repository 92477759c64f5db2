"""Who is acting and from which address, for the current request or job: set once by the layer that
knows (the middleware the address, authentication the key, a bank endpoint the bank, a job runner
the job), read by what records an action or a money movement, so that neither need be handed the
request. Imports nothing of the app, so that the ledger below every domain may read it."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

client_address: ContextVar[str | None] = ContextVar("client_address", default=None)


@dataclass(frozen=True, slots=True)
class Actor:
    """`role` is a key's role (`admin`, `regulator`, `institution`, `parent`, `bank`) with `id` the
    key's id (`environment` for ADMIN_API_KEY), or `bank` with the bank's slug when a bank's signed
    message acts, or `job` with the job's name."""

    role: str
    id: str

    @classmethod
    def parse(cls, text: str) -> "Actor":
        """`job:release_payouts`, `bank:ums`: the role before the first colon."""
        role, _, name = text.partition(":")
        return cls(role, name or role)


current_actor: ContextVar[Actor | None] = ContextVar("current_actor", default=None)


@contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    """Everything done inside is done by `actor` (a job, a bank's message)."""
    token = current_actor.set(actor)
    try:
        yield
    finally:
        current_actor.reset(token)
