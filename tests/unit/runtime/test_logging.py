"""One JSON line per event, stdlib `extra=` fields kept, credentials redacted."""

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from connector.runtime.logging import REDACTED, configure_logging, get_logger
from connector.settings import LoggingSettings


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(LoggingSettings(level="info", format="json"), "test-role")
    out = io.StringIO()
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    try:
        yield out
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def events(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line]


def test_stdlib_extra_fields_are_kept_and_redacted(json_logs: io.StringIO) -> None:
    logging.getLogger("connector.http.ratelimit").warning(
        "rate limit store unavailable", extra={"error": "MaxConnectionsError", "token": "s3cret"}
    )
    (event,) = events(json_logs)
    assert event["event"] == "rate limit store unavailable"
    assert event["error"] == "MaxConnectionsError"
    assert event["token"] == REDACTED
    assert event["role"] == "test-role"
    assert event["level"] == "warning"
    assert "s3cret" not in json_logs.getvalue()


def test_structlog_events_are_redacted_too(json_logs: io.StringIO) -> None:
    get_logger("connector.test").info("called", Authorization="Bearer abc", flow_id="f-1")
    (event,) = events(json_logs)
    assert event["Authorization"] == REDACTED
    assert event["flow_id"] == "f-1"
    assert "Bearer abc" not in json_logs.getvalue()
