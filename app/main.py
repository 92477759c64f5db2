"""The application: settings, engine, middleware, error handlers and routers, put together once.

`uvicorn app.main:app` serves `app`, built from the environment alone; tests call `create_app`.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from app.alerts.endpoints import router as alerts_router
from app.api_keys.endpoints import router as api_keys_router
from app.audit.endpoints import router as audit_router
from app.audit.middleware import ClientAddressMiddleware
from app.auth import cache as key_cache
from app.auth.dependencies import caller_of
from app.banks.crediting import InboxRuntime
from app.banks.endpoints import router as banks_router
from app.body_limit import BodyLimitMiddleware
from app.complaints.endpoints import router as complaints_router
from app.config import Settings, get_settings
from app.courses.endpoints import router as courses_router
from app.db.engine import create_engine
from app.db.replica import create_read_engine
from app.db.unit import Database
from app.enrollments.endpoints import router as enrollments_router
from app.errors import PROBLEM_RESPONSES, UnhandledErrorMiddleware, install_error_handlers
from app.exports.endpoints import router as exports_router
from app.health.endpoints import router as health_router
from app.idempotency.middleware import IdempotencyMiddleware
from app.institutions.endpoints import router as institutions_router
from app.jobs.endpoints import router as jobs_router
from app.jurisdictions.endpoints import router as jurisdictions_router
from app.jurisdictions.profile import profiles as profile_cache
from app.kit import crashpoints, workdays
from app.kit.routing import gate_routers
from app.lessons.endpoints import router as lessons_router
from app.lessons.group_commit import LessonWriter
from app.logging import RequestContextMiddleware, configure_logging
from app.metrics.endpoints import router as metrics_router
from app.metrics.middleware import RequestMetrics
from app.opening.endpoints import router as opening_router
from app.payouts.endpoints import router as payouts_router
from app.reconciliation.endpoints import router as reconciliation_router
from app.refunds.endpoints import router as refunds_router
from app.supervision.endpoints import router as supervision_router
from app.tracing import install_tracing
from app.winddown.endpoints import router as winddown_router

DESCRIPTION = """
Supervision of prepaid tuition: the escrow ledger, bank adapters and the regulator's views.

**Authentication**: `Authorization: Bearer <api key>`.

**Errors** are RFC 9457 `application/problem+json` documents with `type`, `title`, `status`,
`detail`, a machine-readable `code`, `instance` and `request_id`. Invalid payloads are `422` with
code `validation_error` and an `errors` list of `{loc, msg}`.

**Idempotency**: every `POST` honours an `Idempotency-Key` header (at most 255 characters) from a
caller with a valid key (a request with a missing, wrong or revoked key gets its `401` and is never
replayed to). The same key with the same request returns the first response again, with header
`Idempotent-Replayed: true`; the same key with a different request is `422 idempotency_key_reused`;
while the first request is still running, `409 idempotency_in_progress`. The response is recorded in
the same transaction as the change it answers, so a change that committed is always replayed and
one that did not never holds the key: after a `5xx`, a timeout or a dropped connection, retry with
the same key. Responses are kept for `IDEMPOTENCY_TTL_HOURS` (24), sealed at rest; a response that
issued a key (an API key, a parent's key) is replayed with that key.

**Tracing**: send `X-Request-ID` (up to 64 characters of `A-Z a-z 0-9 . _ -`) or get one; it comes
back in the `X-Request-ID` response header and in every problem document. `X-Correlation-ID` (same
rule; the request id when not sent) comes back too, and goes along on the service's calls to banks.
"""


def _package_version() -> str:
    try:
        return version("prepaid-guard")
    except PackageNotFoundError:  # run from a source checkout that was never installed
        return "0+unknown"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    workdays.load_calendar_file(settings.calendar_file)
    crashpoints.enable(settings.crash_point_names)
    key_cache.keys.ttl = settings.cache_seconds
    profile_cache.ttl = settings.cache_seconds

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
        app.state.read_engine = create_read_engine(settings, app.state.engine)
        app.state.inbox = InboxRuntime(Database(app.state.engine, settings), settings.inbox_apply)
        app.state.inbox.start()
        app.state.lesson_writer = (
            LessonWriter(app.state.engine, settings.group_commit_scope)
            if app.state.engine.dialect.name == "postgresql"
            else None
        )
        try:
            yield
        finally:
            if app.state.lesson_writer is not None:
                await app.state.lesson_writer.close()
            await app.state.inbox.close()
            await app.state.engine.dispose()
            if app.state.read_engine is not app.state.engine:
                await app.state.read_engine.dispose()

    # /docs and /redoc load Swagger UI and ReDoc from the copies the fastapi-offline package
    # ships, served by the app itself, so they work without internet (a CDN is FastAPI's default).
    # Swagger UI's online validator badge would send the document's address to swagger.io: off.
    app = FastAPIOffline(
        title="PrepaidGuard",
        version=_package_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        responses=PROBLEM_RESPONSES,
        swagger_ui_parameters={"validatorUrl": "none"},
    )
    install_error_handlers(app)

    # Each middleware added wraps the ones before it. From the outside in: the request id, the
    # request log line and the request's metrics (by route template); the body read whole and refused
    # when too large (before anything else reads it); the 500 problem for anything unhandled (so it
    # has the request id); the idempotency layer, which owns the transaction of a request with a key
    # (so an error inside rolls it back before the 500 is written).
    app.add_middleware(
        IdempotencyMiddleware,
        ttl=timedelta(hours=settings.idempotency_ttl_hours),
        authenticate=caller_of,
    )
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(RequestContextMiddleware, observers=[RequestMetrics().observe])
    # Outermost: the caller's address, for the audit trail, before anything acts.
    app.add_middleware(ClientAddressMiddleware, trusted_proxies=settings.trusted_proxy_addresses)
    install_tracing(app)  # only when OTEL_EXPORTER_OTLP_ENDPOINT is set (docs/operations.md)

    # Routes are tried in order, each costing a few microseconds to try, so the busiest come
    # first: the banks' notifications, then lessons and their confirmations, enrollments and the
    # balance view. No two routes of one method take the same path (tests/test_routing.py), so
    # the order changes nothing but the time it takes to find a route.
    app.include_router(banks_router)
    app.include_router(lessons_router)
    app.include_router(enrollments_router)
    app.include_router(supervision_router)
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(jobs_router)
    app.include_router(payouts_router)
    app.include_router(refunds_router)
    app.include_router(courses_router)
    app.include_router(api_keys_router)
    app.include_router(jurisdictions_router)
    app.include_router(institutions_router)
    app.include_router(reconciliation_router)
    app.include_router(audit_router)
    app.include_router(exports_router)
    app.include_router(winddown_router)
    app.include_router(complaints_router)
    app.include_router(opening_router)
    app.include_router(alerts_router)
    gate_routers(app)
    return app


app = create_app()
