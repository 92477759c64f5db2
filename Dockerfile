# syntax=docker/dockerfile:1
# Build: a virtual environment with the service and its dependencies.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /venv
COPY pyproject.toml README.md ./
COPY app ./app
# The demo (`prepaid-guard serve --demo`) runs the bank simulator beside the API.
COPY bank_simulator ./bank_simulator
# With the tracing extra, so that setting OTEL_EXPORTER_OTLP_ENDPOINT is enough to send traces.
RUN /venv/bin/pip install ".[tracing]"

# Run: the environment, the migrations, an unprivileged user. Configured by environment alone
# (DATABASE_URL, ADMIN_API_KEY, ENVIRONMENT, LOG_LEVEL).
FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /srv prepaid
COPY --from=build /venv /venv
WORKDIR /srv
COPY alembic.ini ./
COPY migrations ./migrations
RUN mkdir -p /srv/data && chown prepaid /srv/data
USER prepaid
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ENVIRONMENT=production \
    DATABASE_URL=sqlite:////srv/data/prepaid_guard.db
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
# Migrations first, then the server; exec so uvicorn receives the container's signals.
CMD ["sh", "-c", "prepaid-guard migrate && exec uvicorn app.main:app --host 0.0.0.0 --port 8000 --proxy-headers"]
