"""Structured logs on stdout: one JSON object per line, or a readable line for development.

Every line has `timestamp` (UTC, ISO 8601), `level`, `logger`, `message`,
`trace_id` and `span_id` (hex, of the span current when it was logged; empty
when there is none) and the event's own fields, passed with `extra=`:

    log.info("sms accepted", extra={"sms_identifier": sid, "user_id": 7, "recipients": [...]})

At INFO and above nothing personal leaves the process as written:
- phone numbers keep their first digits (at most 5) and their last 3, the rest
  starred: `+989121234567` → `+98912****567`. Fields named like a number
  (`recipient`, `recipients`, `to`, `phone`, `msisdn`) are masked whole; in the
  message and in every other text, anything shaped like a number (an optional
  `+` and 7 to 15 digits standing alone) is. Integers are counts and ids:
  `extra={"recipients": 3}` stays 3;
- message text is never logged: fields named `text`, `sms_text` or `body`, and
  message arguments wrapped in `SmsText`, become `[n chars]`.
DEBUG lines are written as they are, for local debugging only.

Configured by SMSGW_LOG_LEVEL and SMSGW_LOG_FORMAT (`json`, the default, or `text`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from opentelemetry import trace

LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_LOG_FORMAT = "json"
DEFAULT_LOG_LEVEL = "INFO"

PHONE_KEYS = frozenset({"recipient", "recipients", "to", "phone", "phone_number", "msisdn"})
TEXT_KEYS = frozenset({"text", "sms_text", "body"})

# A number standing alone: not part of a word, an identifier, a decimal or a UUID.
_PHONE = re.compile(r"(?<![\w.+-])\+?\d{7,15}(?![\w.-])")
KEEP_LAST = 3
KEEP_FIRST = 5
MIN_HIDDEN = 4

# Attributes every LogRecord has: anything else on a record came with `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName", "trace_id", "span_id",
    "color_message",  # uvicorn's message again, with terminal colours
}


class SmsText(str):
    """A message text as a log argument: `[n chars]` at INFO and above."""

    __slots__ = ()


class LogConfigError(ValueError):
    """A logging setting that is not one of the accepted values."""


# --- masking ----------------------------------------------------------------------------------


def mask_phone(number: str) -> str:
    """`+989121234567` → `+98912****567`: the last 3 digits, at most 5 first, 4+ hidden."""
    plus = "+" if number.startswith("+") else ""
    digits = number[len(plus):]
    if len(digits) <= KEEP_LAST:
        return plus + "*" * len(digits)
    first = max(0, min(KEEP_FIRST, len(digits) - KEEP_LAST - MIN_HIDDEN))
    hidden = len(digits) - first - KEEP_LAST
    return plus + digits[:first] + "*" * hidden + digits[-KEEP_LAST:]


def mask_phones_in(text: str) -> str:
    """Every phone-number-shaped run in free text, masked."""
    return _PHONE.sub(lambda m: mask_phone(m.group(0)), text)


def text_placeholder(text: object) -> str:
    return f"[{len(text)} chars]" if isinstance(text, str | bytes) else "[text]"


def mask_value(key: str, value: Any) -> Any:
    """An event field as it may be logged at INFO and above."""
    name = key.lower()
    if name in TEXT_KEYS:
        if isinstance(value, list | tuple):
            return [text_placeholder(v) for v in value]
        return text_placeholder(value)
    if isinstance(value, Mapping):
        return {str(k): mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_value(key, v) for v in value]
    if isinstance(value, SmsText):
        return text_placeholder(value)
    if name in PHONE_KEYS and isinstance(value, str):
        return mask_phone(value)
    if isinstance(value, str):
        return mask_phones_in(value)
    return value


def _masked_arg(arg: Any) -> Any:
    if isinstance(arg, SmsText):
        return text_placeholder(arg)
    if isinstance(arg, Mapping):
        return {str(k): mask_value(str(k), v) for k, v in arg.items()}
    return arg


def rendered_message(record: logging.LogRecord) -> str:
    """The record's message; at INFO and above with text hidden and numbers masked."""
    if record.levelno < logging.INFO:
        return record.getMessage()
    args = record.args
    if isinstance(args, tuple):
        args = tuple(_masked_arg(a) for a in args)
    elif isinstance(args, Mapping):
        args = {k: _masked_arg(v) for k, v in args.items()}
    message = str(record.msg)
    if args:
        try:
            message = message % args
        except (TypeError, ValueError):
            message = f"{message} {args!r}"
    return mask_phones_in(message)


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields passed with `extra=`, masked at INFO and above."""
    fields = {k: v for k, v in vars(record).items()
              if k not in _RECORD_ATTRIBUTES and not k.startswith("_")}
    if record.levelno < logging.INFO:
        return fields
    return {k: mask_value(k, v) for k, v in fields.items()}


def trace_ids() -> tuple[str, str]:
    """(trace_id, span_id) in hex of the current span; empty strings when there is none."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return "", ""
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)


class TraceContextFilter(logging.Filter):
    """Stamps each record with the current span's ids, where and when it is logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "trace_id"):
            record.trace_id, record.span_id = trace_ids()
        return True


def _ids(record: logging.LogRecord) -> tuple[str, str]:
    trace_id = getattr(record, "trace_id", None)
    span_id = getattr(record, "span_id", None)
    if isinstance(trace_id, str) and isinstance(span_id, str):
        return trace_id, span_id
    return trace_ids()


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    parts = []
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    elif record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    text = "\n".join(parts)
    return mask_phones_in(text) if record.levelno >= logging.INFO else text


# --- formatters -------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        trace_id, span_id = _ids(record)
        line: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": rendered_message(record),
            "trace_id": trace_id,
            "span_id": span_id,
        }
        for key, value in event_fields(record).items():
            line.setdefault(key, value)
        if record.exc_info or record.exc_text or record.stack_info:
            line["exception"] = _exception_text(self, record)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`2026-11-26T06:57:33.123Z INFO smsgw.api: sms accepted user_id=7 [trace 4bf9…]`."""

    def format(self, record: logging.LogRecord) -> str:
        trace_id, _ = _ids(record)
        parts = [_timestamp(record), f"{record.levelname:<7}", f"{record.name}:",
                 rendered_message(record)]
        parts.extend(f"{k}={_text_value(v)}" for k, v in event_fields(record).items())
        if trace_id:
            parts.append(f"[trace {trace_id}]")
        line = " ".join(parts)
        if record.exc_info or record.exc_text or record.stack_info:
            line += "\n" + _exception_text(self, record)
        return line


def _text_value(value: Any) -> str:
    if isinstance(value, str) and value and not any(c.isspace() for c in value):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


# --- configuration ----------------------------------------------------------------------------
# The one reading of SMSGW_LOG_LEVEL and SMSGW_LOG_FORMAT: the gateway's settings
# use these, and `smsgw operator-sim`, which has no other settings, calls settings_from_env.


def parse_log_format(raw: str) -> str:
    """`raw` as a log format (`json` or `text`, any case); empty is the default."""
    value = (raw or DEFAULT_LOG_FORMAT).strip().lower()
    if value not in LOG_FORMATS:
        raise LogConfigError(f"SMSGW_LOG_FORMAT={raw!r}: expected json or text")
    return value


def parse_log_level(raw: str) -> str:
    """`raw` as a log level (DEBUG, INFO, WARNING or ERROR, any case); empty is the default."""
    value = (raw or DEFAULT_LOG_LEVEL).strip().upper()
    if value not in LOG_LEVELS:
        raise LogConfigError(f"SMSGW_LOG_LEVEL={raw!r}: expected DEBUG, INFO, WARNING or ERROR")
    return value


def settings_from_env(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(level, format) from SMSGW_LOG_LEVEL and SMSGW_LOG_FORMAT."""
    env = os.environ if env is None else env
    return (parse_log_level(env.get("SMSGW_LOG_LEVEL", "")),
            parse_log_format(env.get("SMSGW_LOG_FORMAT", "")))


def formatter_for(fmt: str) -> logging.Formatter:
    return JsonFormatter() if parse_log_format(fmt) == "json" else TextFormatter()


def configure_logging(
    level: str = "INFO", fmt: str = "json", stream: IO[str] | None = None
) -> logging.Handler:
    """Send every logger's records to one stdout handler in `fmt`, replacing any other.

    Libraries that install handlers of their own (uvicorn's log_config) must be
    told not to, or their lines bypass this format.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(formatter_for(fmt))
    handler.addFilter(TraceContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(parse_log_level(level))
    # Alembic narrates every migration context at INFO, /readyz's included.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    return handler
