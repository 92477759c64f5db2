"""The OpenTelemetry side of tracing: imported only when tracing is on (app/tracing/__init__.py).

Server spans come from FastAPI's instrumentation, with the route template as `http.route`; each
SQL statement and each outgoing httpx call (the banks) is a child span of the request or job that
made it. The instrumentations are given this service's tracer provider rather than setting the
process-wide one, so that an app built by a test traces to the test's exporter alone.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

# Probes and scrapes come every few seconds and say nothing about the work: no traces of them.
UNTRACED_PATHS = "/healthz,/readyz,/metrics"


def otlp_tracer_provider(service_name: str) -> TracerProvider:
    """Spans exported in batches, off the request path, by OTLP over HTTP; the exporter reads the
    standard OTEL_EXPORTER_OTLP_* variables itself (endpoint, headers, timeout)."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def instrument(app: FastAPI, provider: TracerProvider) -> None:
    """Trace the app's requests now, and its database and bank calls while it runs.

    The engine exists only once the app's lifespan has started it, so the database and httpx
    instrumentations are switched on inside the lifespan, after the app's own start, and off at its
    end, when the spans still waiting are exported. Both are process-wide switches: one app traces
    at a time, as one app runs per process."""
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls=UNTRACED_PATHS)
    started_by_app = app.router.lifespan_context

    @asynccontextmanager
    async def traced_lifespan(application: FastAPI) -> AsyncIterator[None]:
        async with started_by_app(application):
            SQLAlchemyInstrumentor().instrument(
                engine=application.state.engine.sync_engine,
                tracer_provider=provider,
                # Its declared range stops below SQLAlchemy 2.1, which the project runs; the engine
                # events it listens to are unchanged there (tests/test_tracing.py sees the spans).
                skip_dep_check=True,
            )
            HTTPXClientInstrumentor().instrument(tracer_provider=provider)
            try:
                yield
            finally:
                HTTPXClientInstrumentor().uninstrument()
                SQLAlchemyInstrumentor().uninstrument()
                # The last spans leave before the process does; the export blocks, so off the loop.
                await asyncio.to_thread(provider.force_flush)

    app.router.lifespan_context = traced_lifespan
