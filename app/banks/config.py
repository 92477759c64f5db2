"""Banks as the operator configures them (PUT /v1/banks/{slug}).

A bank's configuration holds its keys, so it is stored sealed: Fernet (AES-128-CBC with
HMAC-SHA256) under a key derived from SECRET_KEY. It is validated by the adapter's config model
before it is stored, and never returned; what can be read back is which fields are set.
"""

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from weakref import WeakKeyDictionary

from pydantic import BaseModel, SecretStr, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.banks.protocol import BankAdapter
from app.banks.registry import ADAPTERS
from app.banks.schemas import StatementSettings
from app.db.unit import Database
from app.kit.clock import utcnow
from app.kit.errors import DomainError, NotFound, Unprocessable
from app.kit.sealing import InvalidToken, seal, unseal
from app.models import Bank


class BankNotFound(NotFound):
    code = "bank_not_found"


class InvalidBankConfig(Unprocessable):
    code = "invalid_bank_config"
    title = "The bank configuration is not valid for its adapter"


class SealedConfigUnreadable(DomainError):
    status = 500
    code = "bank_config_unreadable"
    title = "The bank's configuration cannot be unsealed (was SECRET_KEY changed?)"


SEALED_CONFIG = "bank config"


@dataclass(frozen=True, slots=True)
class StatementSchedule:
    """When a bank's statements are due and how late it may book a movement (StatementSettings)."""

    grace: timedelta
    workdays_only: bool
    due_after: timedelta


@dataclass(frozen=True, slots=True)
class BankSetup:
    slug: str
    adapter: BankAdapter
    base_url: str
    config: Any  # an instance of adapter.config_model
    updated_at: datetime
    statements: StatementSchedule


def _revealed(value: Any) -> Any:
    """A config value as JSON, secrets included (only ever written sealed)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return {name: _revealed(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, list | tuple):
        return [_revealed(item) for item in value]
    return value


def validate_config(adapter_name: str, raw: dict[str, Any]) -> BaseModel:
    adapter = ADAPTERS[adapter_name]
    try:
        return adapter.config_model.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'config'}: {problem['msg']}"
            for problem in error.errors(include_input=False, include_url=False)
        )
        raise InvalidBankConfig(f"config for adapter {adapter_name!r}: {problems}") from None


async def configure_bank(
    session: AsyncSession,
    secret_key: str,
    slug: str,
    adapter_name: str,
    base_url: str,
    raw_config: dict[str, Any],
    statements: StatementSettings | None = None,
) -> tuple[Bank, BaseModel]:
    """Create or replace a bank's configuration (keys rotate by replacing it); `statements`:
    the defaults when None."""
    statements = statements or StatementSettings()
    config = validate_config(adapter_name, raw_config)
    sealed = seal(secret_key, SEALED_CONFIG, json.dumps(_revealed(config)).encode()).decode()
    now = utcnow()
    bank = await session.get(Bank, slug, with_for_update=True)
    if bank is None:
        bank = Bank(slug=slug, created_at=now)
        session.add(bank)
    bank.adapter = adapter_name
    bank.base_url = base_url
    bank.sealed_config = sealed
    bank.statement_grace_minutes = statements.grace_minutes
    bank.statement_days = statements.statement_days
    bank.statement_due_hours = statements.due_hours
    bank.updated_at = now
    await session.flush()
    return bank, config


@lru_cache(maxsize=256)
def _unsealed(adapter_name: str, sealed: str, secret_key: str) -> BaseModel:
    try:
        raw = json.loads(unseal(secret_key, SEALED_CONFIG, sealed.encode()))
    except InvalidToken:
        raise SealedConfigUnreadable(
            "the stored configuration does not open with SECRET_KEY"
        ) from None
    return ADAPTERS[adapter_name].config_model.model_validate(raw)


def setup_of(bank: Bank, secret_key: str) -> BankSetup:
    return BankSetup(
        slug=bank.slug,
        adapter=ADAPTERS[bank.adapter],
        base_url=bank.base_url.rstrip("/"),
        config=_unsealed(bank.adapter, bank.sealed_config, secret_key),
        updated_at=bank.updated_at,
        statements=StatementSchedule(
            grace=timedelta(minutes=bank.statement_grace_minutes),
            workdays_only=bank.statement_days == "workdays",
            due_after=timedelta(hours=bank.statement_due_hours),
        ),
    )


# Bank messages arrive by the thousand: each process keeps a bank's setup for a few seconds rather
# than reading it for every message. A change (PUT) takes effect at once in the process that made
# it, and everywhere else within that time. Entries belong to one engine (one database).
CACHE_SECONDS = 5.0
_cache: WeakKeyDictionary[AsyncEngine, dict[str, tuple[float, BankSetup]]] = WeakKeyDictionary()


async def cached_bank(db: Database, slug: str, session: AsyncSession | None = None) -> BankSetup:
    """The bank's setup, read when this process has not for CACHE_SECONDS: in `session` when
    given (a caller inside a transaction, which on SQLite holds the one write lock)."""
    now = time.monotonic()
    setups = _cache.setdefault(db.engine, {})
    hit = setups.get(slug)
    if hit is not None and hit[0] > now:
        return hit[1]
    secret = db.settings.secret_key.get_secret_value()
    if session is not None:
        setup = await load_bank(session, slug, secret)
    else:
        setup = await db.run(lambda session: load_bank(session, slug, secret))
    setups[slug] = (now + CACHE_SECONDS, setup)
    return setup


def forget_bank(db: Database, slug: str) -> None:
    """Drop this process's cached setup of a bank whose configuration was just changed."""
    _cache.get(db.engine, {}).pop(slug, None)


async def load_bank(session: AsyncSession, slug: str, secret_key: str) -> BankSetup:
    bank = await session.scalar(select(Bank).where(Bank.slug == slug))
    if bank is None:
        raise BankNotFound(f"no bank {slug!r} is configured")
    return setup_of(bank, secret_key)


def statement_settings(bank: Bank) -> StatementSettings:
    return StatementSettings(
        grace_minutes=bank.statement_grace_minutes,
        statement_days=bank.statement_days,  # type: ignore[arg-type]  # validated when stored
        due_hours=bank.statement_due_hours,
    )


def configured_fields(config: BaseModel) -> list[str]:
    """The names of the fields that are set: what an operator may read back (never their values)."""
    return sorted(
        name for name in type(config).model_fields if getattr(config, name) not in (None, [])
    )
