"""Request and correlation ids, and the JSON request log."""

import json
import logging
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from app.logging import JSON_HANDLER_NAME, LeanJsonFormatter, RequestIdFilter, configure_logging


@pytest.fixture
def caplog_with_request_ids(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.handler.addFilter(RequestIdFilter())
    return caplog


async def test_a_sane_request_id_is_echoed(client):
    response = await client.get("/healthz", headers={"X-Request-ID": "abc.DEF_123-x"})

    assert response.headers["x-request-id"] == "abc.DEF_123-x"


@pytest.mark.parametrize("offered", [None, "x" * 65, "has space", "semi;colon", ""])
async def test_a_missing_or_odd_request_id_is_replaced_by_a_new_one(client, offered):
    headers = {} if offered is None else {"X-Request-ID": offered}
    first = await client.get("/healthz", headers=headers)
    second = await client.get("/healthz", headers=headers)

    generated = first.headers["x-request-id"]
    assert generated != offered
    assert len(generated) == 32 and generated.isalnum()
    assert second.headers["x-request-id"] != generated


async def test_each_request_is_logged_once_with_its_outcome(client, caplog_with_request_ids):
    await client.get("/no-such-page", headers={"X-Request-ID": "req-404"})

    [line] = [r for r in caplog_with_request_ids.records if r.name == "app.request"]
    assert line.method == "GET"  # type: ignore[attr-defined]
    assert line.path == "/no-such-page"  # type: ignore[attr-defined]
    assert line.status == 404  # type: ignore[attr-defined]
    assert line.duration_ms >= 0  # type: ignore[attr-defined]
    assert line.request_id == "req-404"  # type: ignore[attr-defined]


def test_log_lines_are_json_with_level_and_request_and_correlation_ids():
    configure_logging("INFO")
    [handler] = [h for h in logging.getLogger().handlers if h.get_name() == JSON_HANDLER_NAME]
    record = logging.LogRecord("app.test", logging.WARNING, __file__, 1, "hello %s", ("you",), None)
    record.request_id = "req-1"
    record.correlation_id = "order-7"

    line = json.loads(handler.format(record))

    assert line["level"] == "WARNING"
    assert line["name"] == "app.test"
    assert line["message"] == "hello you"
    assert line["request_id"] == "req-1"
    assert line["correlation_id"] == "order-7"
    assert "timestamp" in line


async def test_a_sane_correlation_id_is_echoed_beside_a_request_id_of_its_own(client):
    response = await client.get("/healthz", headers={"X-Correlation-ID": "order-7.retry_2"})

    assert response.headers["x-correlation-id"] == "order-7.retry_2"
    assert response.headers["x-request-id"] != "order-7.retry_2"


@pytest.mark.parametrize("offered", [None, "x" * 65, "has space", "semi;colon", ""])
async def test_without_a_sane_correlation_id_the_request_id_correlates(client, offered):
    headers = {} if offered is None else {"X-Correlation-ID": offered}

    response = await client.get("/healthz", headers=headers)

    assert response.headers["x-correlation-id"] == response.headers["x-request-id"]


async def test_every_line_logged_during_a_request_carries_its_correlation_id(
    app, client, caplog_with_request_ids
):
    async def working() -> dict[str, str]:
        logging.getLogger("app.test").warning("working")
        return {}

    app.add_api_route("/test/working", working)
    await client.get("/test/working", headers={"X-Correlation-ID": "nightly-42"})
    logging.getLogger("app.test").warning("after the request")

    lines = [
        (record.name, getattr(record, "correlation_id", None))
        for record in caplog_with_request_ids.records
        if record.name in ("app.test", "app.request")
    ]
    assert lines == [("app.test", "nightly-42"), ("app.request", "nightly-42"), ("app.test", None)]


# The handler's formatter, and the library's own with the same settings: one line each.
_SETTINGS: dict[str, Any] = {
    "timestamp": True,
    "rename_fields": {"levelname": "level"},
    "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
}
_LEAN = LeanJsonFormatter("%(levelname)s %(name)s %(message)s", **_SETTINGS)
_LIBRARY = JsonFormatter("%(levelname)s %(name)s %(message)s", **_SETTINGS)

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.uuids(),
    st.datetimes(timezones=st.just(UTC)),
    st.lists(st.integers(), max_size=3),
)
# Extra fields as a caller passes them: any name a LogRecord does not have already.
_TAKEN = {
    *logging.LogRecord("n", logging.INFO, "p", 1, "m", (), None).__dict__,
    "message",
    "asctime",
}
_extras = st.dictionaries(
    st.text(min_size=1, max_size=12).filter(lambda key: key not in _TAKEN), _values, max_size=6
)


def _record(
    message: object, args: tuple[object, ...], extras: dict[str, Any], error: bool
) -> logging.LogRecord:
    exc_info = None
    if error:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.getLogger("app.test").makeRecord(
        "app.test", logging.WARNING, __file__, 1, message, args, exc_info, extra=extras
    )
    record.created = 1_767_000_000.123456  # both lines of one record carry one moment
    return record


@given(
    message=st.one_of(st.text(max_size=20), st.builds(dict, note=st.text(max_size=5))),
    extras=_extras,
    error=st.booleans(),
)
def test_the_lean_formatter_writes_the_librarys_line(message, extras, error):
    args: tuple[object, ...] = ()
    if isinstance(message, str):
        message = message.replace("%", "%%")

    lean = _LEAN.format(_record(message, args, extras, error))
    library = _LIBRARY.format(_record(message, args, extras, error))

    assert lean == library


def test_the_request_line_is_the_librarys_line():
    record = _record(
        "request",
        (),
        {"method": "GET", "path": "/v1/x", "status": 200, "duration_ms": 1.5, "id": uuid.uuid4()},
        False,
    )
    record.request_id = "req-1"
    record.correlation_id = "req-1"
    line = json.loads(_LEAN.format(record))

    assert _LEAN.format(record) == _LIBRARY.format(record)
    assert list(line) == [
        "level",
        "name",
        "message",
        "method",
        "path",
        "status",
        "duration_ms",
        "id",
        "request_id",
        "correlation_id",
        "timestamp",
    ]
    assert line["timestamp"] == datetime.fromtimestamp(record.created, tz=UTC).isoformat()
