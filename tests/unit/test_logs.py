"""Structured logs: JSON lines with trace ids, masking of numbers and text at INFO and above."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from smsgw_adapters.observability import logs
from smsgw_adapters.observability.logs import SmsText, mask_phone, mask_phones_in

UUID = "6f1c2a3b-1234-4567-8901-123456789012"


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing JSON lines to a buffer, as configure_logging would set it up."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.TraceContextFilter())
    logger = logging.getLogger("smsgw.test.logs")
    logger.handlers = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, out
    finally:
        logger.handlers = []
        logger.propagate = True


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize(("number", "masked"), [
    ("+989121234567", "+98912****567"),
    ("989121234567", "98912****567"),
    ("09128582812", "0912****812"),
    ("1234567", "****567"),
    ("+12345678", "+1****678"),
    ("123", "***"),
])
def test_mask_phone(number: str, masked: str) -> None:
    assert mask_phone(number) == masked


def test_free_text_masks_numbers_but_not_identifiers() -> None:
    text = (f"sms {UUID} to +989121234567, 09128582812 and 0912858 failed after 0.1234567 s; "
            "user 42 balance 1000 id=abc1234567")
    assert mask_phones_in(text) == (
        f"sms {UUID} to +98912****567, 0912****812 and ****858 failed after 0.1234567 s; "
        "user 42 balance 1000 id=abc1234567"
    )


def test_json_line_has_the_fixed_fields(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = capture
    logger.warning("relay %s retrying", "relay-normal-0")
    (line,) = lines(out)
    assert set(line) == {"timestamp", "level", "logger", "message", "trace_id", "span_id"}
    assert line["level"] == "WARNING"
    assert line["logger"] == "smsgw.test.logs"
    assert line["message"] == "relay relay-normal-0 retrying"
    assert line["trace_id"] == "" and line["span_id"] == ""
    assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]


def test_json_line_carries_the_current_span(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = capture
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        logger.info("inside")
    logger.info("outside")
    inside, outside = lines(out)
    context = span.get_span_context()
    assert inside["trace_id"] == trace.format_trace_id(context.trace_id)
    assert inside["span_id"] == trace.format_span_id(context.span_id)
    assert len(inside["trace_id"]) == 32 and len(inside["span_id"]) == 16
    assert outside["trace_id"] == ""


def test_event_fields_are_masked_at_info(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = capture
    logger.info("sms accepted", extra={
        "sms_identifier": UUID, "user_id": 1234567, "type": "express", "segments": 1,
        "recipients": ["+989121234567", "09128582812"], "recipient": "+989120000001",
        "text": "Your code is 4711", "note": "asked by 09120000002",
        "nested": {"to": "09121112222", "body": "secret words"},
    })
    (line,) = lines(out)
    assert line["sms_identifier"] == UUID
    assert line["user_id"] == 1234567  # a number that is not a string is a count or an id
    assert line["recipients"] == ["+98912****567", "0912****812"]
    assert line["recipient"] == "+98912****001"
    assert line["text"] == "[17 chars]"
    assert line["note"] == "asked by 0912****002"
    assert line["nested"] == {"to": "0912****222", "body": "[12 chars]"}
    raw = out.getvalue()
    for secret in ("4711", "1234567\"", "09128582812", "secret"):
        assert secret not in raw.replace('"user_id": 1234567', "")


def test_message_arguments_are_masked_at_info(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = capture
    logger.error("operator refused %s: %s (%s)", "+989121234567", SmsText("Your code is 4711"),
                 {"text": "hi there", "to": "09121112222"})
    (line,) = lines(out)
    assert line["message"] == (
        "operator refused +98912****567: [17 chars] "
        "({'text': '[8 chars]', 'to': '0912****222'})"
    )


def test_debug_lines_are_written_as_they_are(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = capture
    logger.debug("sending %s to %s", SmsText("Your code is 4711"), "+989121234567",
                 extra={"text": "Your code is 4711"})
    (line,) = lines(out)
    assert line["message"] == "sending Your code is 4711 to +989121234567"
    assert line["text"] == "Your code is 4711"


def test_exceptions_are_logged_with_their_traceback_masked(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = capture
    try:
        raise RuntimeError("cannot reach +989121234567")
    except RuntimeError:
        logger.exception("delivery failed")
    (line,) = lines(out)
    assert "Traceback" in line["exception"]
    assert "RuntimeError: cannot reach +98912****567" in line["exception"]


def test_unserializable_fields_become_strings(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = capture
    logger.info("odd", extra={"value": object(), "when": b"x", "color_message": "\x1b[36m"})
    (line,) = lines(out)
    assert line["value"].startswith("<object object")
    assert "color_message" not in line


def test_text_format_is_one_readable_line() -> None:
    record = logging.LogRecord("smsgw.api", logging.INFO, __file__, 1, "sms accepted for %s",
                               ("+989121234567",), None)
    record.user_id = 7
    record.text = "hello there"
    record.trace_id, record.span_id = "ab" * 16, "cd" * 8
    line = logs.TextFormatter().format(record)
    assert "\n" not in line
    assert line.split(" ", 1)[1] == (
        "INFO    smsgw.api: sms accepted for +98912****567 user_id=7 "
        f'text="[11 chars]" [trace {"ab" * 16}]'
    )


def test_configure_logging_replaces_the_handlers() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    try:
        logs.configure_logging("WARNING", "json", out)
        assert len(root.handlers) == 1
        logging.getLogger("smsgw.x").info("hidden")
        logging.getLogger("smsgw.x").warning("shown")
        logging.getLogger("alembic.runtime").warning("shown too")
        (first, second) = lines(out)
        assert first["message"] == "shown" and second["logger"] == "alembic.runtime"
        logs.configure_logging("INFO", "text", out)
        assert isinstance(root.handlers[0].formatter, logs.TextFormatter)
        assert logging.getLogger("alembic").level == logging.WARNING
    finally:
        logging.captureWarnings(False)
        root.handlers = saved[0]
        root.setLevel(saved[1])


@pytest.mark.parametrize(("env", "expected"), [
    ({}, ("INFO", "json")),
    ({"SMSGW_LOG_LEVEL": "debug", "SMSGW_LOG_FORMAT": "TEXT"}, ("DEBUG", "text")),
    ({"SMSGW_LOG_LEVEL": "", "SMSGW_LOG_FORMAT": ""}, ("INFO", "json")),
])
def test_settings_from_env(env: dict[str, str], expected: tuple[str, str]) -> None:
    assert logs.settings_from_env(env) == expected


@pytest.mark.parametrize("env", [{"SMSGW_LOG_FORMAT": "xml"}, {"SMSGW_LOG_LEVEL": "LOUD"}])
def test_bad_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(logs.LogConfigError, match="SMSGW_LOG_"):
        logs.settings_from_env(env)


def test_the_gateway_setting_defaults_to_json() -> None:
    from smsgw_app.config import ConfigError, Settings

    assert Settings.from_env({}).log_format == "json"
    assert Settings.from_env({"SMSGW_LOG_FORMAT": "Text"}).log_format == "text"
    with pytest.raises(ConfigError, match="SMSGW_LOG_FORMAT='xml'"):
        Settings.from_env({"SMSGW_LOG_FORMAT": "xml"})
