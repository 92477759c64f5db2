"""One Settings class, read from the environment alone."""

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


DEVELOPMENT_SECRET = "development-only-secret-do-not-use-in-production"


class InboxApply(StrEnum):
    """When a stored payment message is credited (app/banks/crediting.py)."""

    background = "background"  # by this process's worker, right after the reply
    inline = "inline"  # by the request itself, before the reply (tests, a single small process)


class GroupCommitScope(StrEnum):
    """What one group-committed transaction may hold: single lesson records (app/lessons), or the
    stored payments the inbox's worker credits (app/banks/crediting.py)."""

    database = "database"  # any institutions' rows: one database holds them all
    institution = "institution"  # one institution's: sharded by institution (Citus), one shard


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    environment: Environment = Environment.development
    # Plain URLs are accepted (postgresql://user@host:port/db, sqlite:///path); the service picks
    # the async driver itself.
    database_url: str = "sqlite:///./prepaid_guard.db"
    # A streaming replica for the regulator's reads (its lists, summary, balance views, alerts,
    # exports, audit trail and ledger verification): they may lag the primary by the replica's
    # delay. Unset: they read the primary. Nothing is ever written through it.
    read_database_url: str | None = None
    admin_api_key: SecretStr | None = None
    # Keys API keys and identity numbers are hashed with (HMAC-SHA256). Changing it invalidates
    # every issued key and unlinks stored identity hashes: set it once per deployment.
    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET)
    log_level: str = "INFO"
    # Postgres pool size per process; the ledger holds a connection only for one short transaction.
    db_pool_size: int = 20
    # How long a process remembers an API key it found live and a jurisdiction's rule profile
    # (app/kit/ttl_cache.py): a revoked key or a changed profile takes effect at once in the
    # process that changed it, and within this many seconds in the others. 0 reads them every time.
    cache_seconds: float = Field(default=10.0, ge=0, le=300)
    # How long a stored idempotent response is kept.
    idempotency_ttl_hours: int = 24
    # Calls to a bank: how long to wait for an answer before asking the bank what happened.
    bank_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Working-day calendars of years published after the installed chinesecalendar (see
    # app/kit/workdays.py for the format).
    calendar_file: Path | None = None
    # Enrollments a wind-down goes through per transaction (app/winddown): each batch commits on
    # its own, so a county's thousands never make one long transaction.
    wind_down_batch_size: int = Field(default=200, ge=1, le=5000)
    # When a bank's payment is credited: by a worker right after the bank's reply (background,
    # which group-commits the inbox: the reply means "stored"), or before the reply (inline).
    inbox_apply: InboxApply = InboxApply.background
    # Single lesson records of concurrent requests are written together in one transaction on
    # PostgreSQL (app/lessons/group_commit.py), and the inbox's worker credits many institutions'
    # payments in one (app/banks/crediting.py); `institution` confines each such transaction to one
    # institution, as a deployment sharded by institution needs (docs/deploy.md).
    group_commit_scope: GroupCommitScope = GroupCommitScope.database
    # Tests only: comma-separated names of crash points (app/kit/crashpoints.py) at which the
    # process kills itself. Refused in production.
    crash_points: str = ""
    # Comma-separated addresses of reverse proxies in front of the service: only a request coming
    # from one of them has its client's address read from X-Forwarded-For (for the audit trail).
    # Empty: the address is the TCP peer's, and no header is believed.
    trusted_proxies: str = ""
    # When set, GET /metrics answers only `Authorization: Bearer <this token>`; unset, it is open
    # (for a scraper on a private network). See docs/operations.md.
    metrics_token: SecretStr | None = None

    @model_validator(mode="after")
    def _refuse_weak_secrets_in_production(self) -> "Settings":
        if self.environment is not Environment.production:
            return self
        if self.crash_points:
            raise ValueError("CRASH_POINTS is for tests and is refused in production")
        if self.admin_api_key is not None and len(self.admin_api_key.get_secret_value()) < 32:
            raise ValueError("ADMIN_API_KEY must be a random string of 32 characters or more")
        secret = self.secret_key.get_secret_value()
        if secret == DEVELOPMENT_SECRET or len(secret) < 32:
            raise ValueError("SECRET_KEY must be set to a random string of 32 characters or more")
        return self

    @property
    def crash_point_names(self) -> frozenset[str]:
        return frozenset(name.strip() for name in self.crash_points.split(",") if name.strip())

    @property
    def trusted_proxy_addresses(self) -> frozenset[str]:
        return frozenset(name.strip() for name in self.trusted_proxies.split(",") if name.strip())

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.production


@lru_cache
def get_settings() -> Settings:
    return Settings()
