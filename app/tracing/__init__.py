"""OpenTelemetry tracing, on only when OTEL_EXPORTER_OTLP_ENDPOINT is set.

The OpenTelemetry packages are the optional extra `prepaid-guard[tracing]`, imported only then: a
service that does not trace neither loads them nor pays for them on a request. A service asked to
trace without them says so once and serves untraced, rather than not starting over telemetry.
"""

import importlib
import logging
import os
from collections.abc import Mapping

from fastapi import FastAPI

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
SERVICE_NAME_VARIABLE = "OTEL_SERVICE_NAME"
DEFAULT_SERVICE_NAME = "prepaid-guard"

logger = logging.getLogger(__name__)


def install_tracing(app: FastAPI, environ: Mapping[str, str] = os.environ) -> bool:
    """Trace `app` to the configured OTLP endpoint; True when it does."""
    if not environ.get(ENDPOINT_VARIABLE):
        return False
    try:
        otel = importlib.import_module("app.tracing.otel")
    except ImportError as missing:
        logger.warning(
            "%s is set but the OpenTelemetry packages are not installed (%s): serving without "
            "tracing; install prepaid-guard[tracing]",
            ENDPOINT_VARIABLE,
            missing,
        )
        return False
    service_name = environ.get(SERVICE_NAME_VARIABLE) or DEFAULT_SERVICE_NAME
    otel.instrument(app, otel.otlp_tracer_provider(service_name))
    logger.info("tracing to %s as %s", environ[ENDPOINT_VARIABLE], service_name)
    return True
