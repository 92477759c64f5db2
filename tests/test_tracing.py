"""OpenTelemetry tracing: off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; then a request is a server
span named by its route, with its SQL and outgoing HTTP calls in the same trace, exported by OTLP
under the service's name."""

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.config import Settings
from app.tracing import otel
from tests.factories import auth, make_world
from tests.live import serve

LESSONS_ROUTE = "/v1/enrollments/{enrollment_id}/lessons"


def _app(database_url: str) -> FastAPI:
    from app.main import create_app

    return create_app(Settings(database_url=database_url))


async def test_a_request_is_a_server_span_of_its_route_with_its_sql_and_its_caller_in_one_trace(
    engine, database_url
):
    world = await make_world(engine)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = _app(database_url)
    otel.instrument(app, provider)

    async with app.router.lifespan_context(app), serve(app) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.get(
                f"/v1/enrollments/{uuid.uuid4()}/lessons", headers=auth(world.institution_key)
            )
    spans: tuple[ReadableSpan, ...] = exporter.get_finished_spans()

    assert response.status_code == 404
    [server] = [span for span in spans if span.kind is SpanKind.SERVER]
    assert server.name == f"GET {LESSONS_ROUTE}"
    assert server.attributes is not None and server.attributes["http.route"] == LESSONS_ROUTE
    trace_id = server.context.trace_id
    sql = [span for span in spans if span.attributes and "db.system" in span.attributes]
    assert sql and all(span.context.trace_id == trace_id for span in sql)
    # The test's own call, traced by the httpx instrumentation, is the server span's parent: the
    # trace context crossed the wire in `traceparent`.
    assert server.parent is not None
    [caller] = [span for span in spans if span.context.span_id == server.parent.span_id]
    assert caller.kind is SpanKind.CLIENT and caller.parent is None
    assert caller.attributes is not None
    called = caller.attributes.get("url.full", caller.attributes.get("http.url"))  # new, old names
    assert str(called).startswith(url)


@pytest.mark.database_free
def test_without_the_endpoint_variable_the_opentelemetry_packages_are_not_even_loaded(tmp_path):
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("OTEL_")
    }
    environment["DATABASE_URL"] = f"sqlite:///{tmp_path / 'unused.db'}"
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, app.main; print(sorted(sys.modules))",
        ],
        env=environment,
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    # (FastAPI itself loads the small opentelemetry API; the SDK and instrumentations are ours.)
    assert "'app.main'" in loaded.stdout
    for heavy in ("'app.tracing.otel'", "'opentelemetry.sdk", "'opentelemetry.instrumentation"):
        assert heavy not in loaded.stdout


async def test_without_the_tracing_packages_the_service_warns_once_and_starts(
    database_url, monkeypatch, caplog
):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setitem(sys.modules, "app.tracing.otel", None)  # as if the extra were missing

    app = _app(database_url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        alive = await client.get("/healthz")

    assert alive.status_code == 200
    [warning] = [r for r in caplog.records if r.name == "app.tracing"]
    assert warning.levelno == logging.WARNING
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in warning.getMessage()
    assert "prepaid-guard[tracing]" in warning.getMessage()


# --- export over OTLP, as configured by the standard variables ---


@pytest.fixture
async def collector() -> AsyncIterator[tuple[str, list[ExportTraceServiceRequest]]]:
    """A stand-in for an OpenTelemetry collector: it keeps what is posted to /v1/traces."""
    received: list[ExportTraceServiceRequest] = []
    receiver = FastAPI()

    @receiver.post("/v1/traces")
    async def traces(request: Request) -> dict[str, str]:
        received.append(ExportTraceServiceRequest.FromString(await request.body()))
        return {}

    async with serve(receiver) as url:
        yield url, received


@pytest.mark.parametrize(
    ("configured_name", "expected_name"), [(None, "prepaid-guard"), ("pg-eu-1", "pg-eu-1")]
)
async def test_with_the_endpoint_set_spans_reach_the_collector_under_the_service_name(
    database_url, monkeypatch, collector, configured_name, expected_name
):
    url, received = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    if configured_name is None:
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    else:
        monkeypatch.setenv("OTEL_SERVICE_NAME", configured_name)

    app = _app(database_url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        await client.get(f"/v1/enrollments/{uuid.uuid4()}/lessons")
    # Leaving the lifespan exported what was waiting.

    exported = [
        (attribute.value.string_value, span.name)
        for request in received
        for resource_spans in request.resource_spans
        for attribute in resource_spans.resource.attributes
        if attribute.key == "service.name"
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    assert (expected_name, f"GET {LESSONS_ROUTE}") in exported
