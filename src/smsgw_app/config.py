"""Typed configuration from the environment. Every setting is in the README's table.

A bad value raises ConfigError with one line naming the variable; the CLI
prints it and exits 2. `Settings` is a msgspec Struct: a setting's kind
(`Count`, `Seconds`, …) holds its limits, checked by msgspec, and the kind's
entry in `_READINGS` the words for its problems.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit

import msgspec
from msgspec import Meta

from smsgw_adapters.observability import logs
from smsgw_adapters.operators.simulated import Behaviour, BehaviourError
from smsgw_core.send_limits import Rate


class ConfigError(Exception):
    pass


def mask_password(url: str) -> str:
    """`url` with its password, if any, shown as *** (for logs and error lines)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not at or not colon:
        return url
    return f"{scheme}://{user}:***@{hostport}{slash}{tail}"


def hide_password(text: str, url: str) -> str:
    """`text` (e.g. a driver's error message) with `url`'s password, if any, as ***."""
    password = urlsplit(url).password if "://" in url else None
    for secret in {password, unquote(password)} if password else ():
        text = text.replace(secret, "***")
    return text


@dataclass(frozen=True, slots=True)
class OperatorSpec:
    name: str
    url: str  # without the tps parameter, which is ours, not the operator's
    tps: float | None = None  # sends per second at most, over every worker process

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    def params(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.url).query).items()}


# The kinds of value a setting can take. Their limits are msgspec constraints,
# checked by msgspec; each kind's one-line problems are in `_READINGS` below.
Count = Annotated[int, Meta(ge=1)]
Amount = Annotated[int, Meta(ge=0)]
Port = Annotated[int, Meta(ge=0, le=65535)]
Seconds = Annotated[float, Meta(gt=0)]
Share = Annotated[float, Meta(gt=0, le=1)]
QueueName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9._-]{1,200}$")]
EventLoop = Literal["uvloop", "asyncio"]
# The seed routes (the Go service's): open to anyone who reaches the port, as
# the Go service's were (none), or behind the /v1 keys (key).
LegacyAuth = Literal["none", "key"]

def _env_name(field_name: str) -> str:
    return f"SMSGW_{field_name.upper()}"


class Settings(msgspec.Struct, frozen=True, kw_only=True, rename=_env_name):
    """Every setting; each is read from SMSGW_ and its name in capitals."""

    database_url: str = "sqlite+aiosqlite:///./smsgw.db"
    broker_url: str = "memory://"
    operators: tuple[OperatorSpec, ...] = (OperatorSpec("A", "sim://"), OperatorSpec("B", "sim://"))
    price_normal: Amount = 1
    price_express: Amount = 3
    # Deliveries in flight per worker process: they share their claim and outcome
    # transactions, so more at once means bigger groups and fewer commits per message.
    workers: Count = 64
    express_workers: Count = 16
    delivery_limit: Count = 20
    express_queue: QueueName = "EXPRESS_QUEUE"
    normal_queue: QueueName = "NORMAL_QUEUE"
    dead_letter_queue: QueueName = "SMSGW_DEAD_LETTER"
    prefetch: Count = 32
    relay_express_workers: Count = 4
    relay_normal_workers: Count = 2
    relay_batch: Count = 100
    # Normal deliveries the broker's queue may hold at most: the relays keep it
    # just full enough for the workers (fairness.Headroom) and the rest waits in
    # the outbox, where the fair order across customers is made.
    relay_ahead: Count = 500
    # Recipients per published delivery at most: a worker holds a delivery until its
    # last recipient is sent, so a large SMS goes as several, each claimed on its own.
    delivery_chunk: Count = 20
    # Recipients per RabbitMQ message at most: small SMS go together, sharing the
    # broker's and both ends' cost per message (1: one delivery per message).
    publish_bundle: Count = 20
    outbox_retention_s: Seconds = 3600.0
    operator_timeout_s: Seconds = 5.0
    operator_retries: Amount = 1
    # An operator's circuit opens when, of the calls that finished in the last
    # window (at least min_calls), at least failure_rate failed; it stays open reset_s.
    breaker_window_s: Seconds = 10.0
    breaker_min_calls: Count = 20
    breaker_failure_rate: Share = 0.5
    breaker_reset_s: Seconds = 5.0
    # A published delivery whose recipients are still PENDING this long after
    # publishing, while its queue holds nothing, was lost: it is published again.
    redrive_after_s: Seconds = 60.0
    message_ttl_s: Seconds = 86_400.0  # validity: past it, unfinished recipients fail "expired"
    delivery_lease_s: Seconds = 60.0  # a SENDING recipient's claim; past it, claimable again
    shutdown_timeout_s: Seconds = 20.0
    log_level: str = logs.DEFAULT_LOG_LEVEL
    log_format: str = logs.DEFAULT_LOG_FORMAT  # "json" or "text", for development
    metrics_port: Port = 9464  # `smsgw relay` and `smsgw worker`; 0: no metrics server
    max_backlog: Amount = 100_000  # due outbox events over which sends are refused; 0: no limit
    accept_batch: Count = 200  # concurrent sends sharing one transaction at most; 1: each alone
    event_loop: EventLoop = "uvloop"  # or "asyncio", the standard library's
    # A request (headers and body) must arrive whole within this of the connection
    # opening or its first byte; an idle keep-alive connection closes after the
    # idle timeout; connections past the cap are answered 503.
    http_request_timeout_s: Seconds = 10.0
    http_idle_timeout_s: Seconds = 5.0
    http_max_connections: Count = 1000
    legacy_auth: LegacyAuth = "none"
    # Recipients per second a customer may send, with a burst (e.g. 200/s,burst=1000),
    # unless an admin set the customer's own; unset: unlimited.
    customer_rate: Rate | None = None
    # /metrics (and the metrics port) answer only with this Bearer token; empty: anyone.
    metrics_token: str = ""
    # Browser origins allowed to call the API (CORS); empty: no CORS headers at all.
    cors_origins: tuple[str, ...] = ()

    @property
    def embedded_bus(self) -> bool:
        return self.broker_url == "memory://"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        _no_breaker_threshold(env)
        values: dict[str, Any] = {}
        for setting in msgspec.structs.fields(cls):
            raw = env.get(setting.encode_name)
            parse = _OWN_SYNTAX.get(setting.name)
            if parse is not None and raw is not None:
                values[setting.name] = parse(raw)  # set but empty is refused, not the default
            elif parse is None and raw:
                values[setting.name] = _read(setting.encode_name, raw, setting.type)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class _Reading:
    """How a kind of setting is read from its text, and its problems in words."""

    parse: Callable[[str], object]  # Python's int() and float(), as before: " 7" and "07" are 7
    expected: str  # when the text does not parse
    out_of_range: str  # when the value breaks the kind's constraints


def _bounds(kind: object) -> Any:
    return msgspec.inspect.type_info(kind)  # e.g. IntType(ge=1, le=None, ...)


_READINGS: dict[object, _Reading] = {
    Count: _Reading(int, "expected an integer", f"must be at least {_bounds(Count).ge}"),
    Amount: _Reading(int, "expected an integer", f"must be at least {_bounds(Amount).ge}"),
    Port: _Reading(int, "expected an integer", f"must be at least {_bounds(Port).ge}"),
    Seconds: _Reading(float, "expected a number of seconds", "must be positive"),
    Share: _Reading(float, "expected a share, e.g. 0.5", "must be above 0 and at most 1"),
    # Any text is a string: only the constraint can fail.
    QueueName: _Reading(str, "", "use letters, digits, '.', '_' or '-'"),
    EventLoop: _Reading(str, "", "expected uvloop or asyncio"),
    LegacyAuth: _Reading(str, "", "expected none or key"),
}


def _read(name: str, raw: str, kind: object) -> Any:
    reading = _READINGS[kind]
    try:
        value = reading.parse(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: {reading.expected}") from None
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError:
        top = _bounds(Port).le
        if kind == Port and isinstance(value, int) and value > top:
            raise ConfigError(
                f"{name}={str(value)!r}: a TCP port is at most {top} (0: off)") from None
        raise ConfigError(f"{name}={raw!r}: {reading.out_of_range}") from None


def _no_breaker_threshold(env: Mapping[str, str]) -> None:
    # Its meaning is gone (consecutive failed tries); ignoring it would silently
    # run with other settings than the ones the deployment believes it set.
    if "SMSGW_BREAKER_THRESHOLD" in env:
        raise ConfigError(
            "SMSGW_BREAKER_THRESHOLD is no longer read: the circuit opens on a failure rate"
            " (SMSGW_BREAKER_WINDOW_S, SMSGW_BREAKER_MIN_CALLS, SMSGW_BREAKER_FAILURE_RATE)"
        )


def _database_url(url: str) -> str:
    if url.startswith("mysql+asyncmy://"):
        if not urlsplit(url).path.strip("/"):
            raise ConfigError(
                f"SMSGW_DATABASE_URL={mask_password(url)!r}: name the database after the host")
        return url
    if not url.startswith("sqlite+aiosqlite://"):
        raise ConfigError(
            f"SMSGW_DATABASE_URL={mask_password(url)!r}: expected sqlite+aiosqlite:///PATH "
            "or mysql+asyncmy://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
        )
    path = urlsplit(url).path.removeprefix("/")
    if path and ":memory:" not in path and not os.path.isdir(os.path.dirname(path) or "."):
        # A typo in the path must not silently start an empty database somewhere new.
        raise ConfigError(
            f"SMSGW_DATABASE_URL={url!r}: directory {os.path.dirname(path)!r} does not exist"
        )
    return url


def _broker_url(url: str) -> str:
    if url == "memory://":
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise ConfigError(
            f"SMSGW_BROKER_URL={mask_password(url)!r}: "
            "expected memory:// or amqp://USER:PASSWORD@HOST:PORT/"
        )
    return url


def _operators(raw: str) -> tuple[OperatorSpec, ...]:
    specs: list[OperatorSpec] = []
    for item in (part.strip() for part in raw.split(",")):
        name, sep, url = item.partition("=")
        name, url = name.strip(), url.strip()
        if not sep or not name or not url:
            raise ConfigError(f"SMSGW_OPERATORS: {item!r} is not NAME=URL")
        if any(s.name == name for s in specs):
            raise ConfigError(f"SMSGW_OPERATORS: operator {name!r} is listed twice")
        spec = _capped(OperatorSpec(name, url))
        if spec.scheme == "sim":
            _check_sim_params(spec)
        elif spec.scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ConfigError(
                f"SMSGW_OPERATORS: {name}={url!r}: expected sim://[?params] or http(s)://HOST[:PORT]"
            )
        specs.append(spec)
    return tuple(specs)


def _capped(spec: OperatorSpec) -> OperatorSpec:
    """The spec with its `tps` parameter, if any, read out of the URL."""
    parts = urlsplit(spec.url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    caps = [value for key, value in params if key == "tps"]
    if not caps:
        return spec
    try:
        tps = float(caps[-1])
    except ValueError:
        tps = math.nan
    if not 0 < tps <= 1_000_000:
        raise ConfigError(f"SMSGW_OPERATORS: {spec.name}: tps={caps[-1]!r}: expected sends "
                          "per second, above 0 and at most 1000000")
    rest = urlencode([(key, value) for key, value in params if key != "tps"])
    # By hand: urlunsplit would write sim:// without its two slashes.
    url = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{rest}" if rest else "")
    return OperatorSpec(spec.name, url + (f"#{parts.fragment}" if parts.fragment else ""), tps)


def _check_sim_params(spec: OperatorSpec) -> None:
    try:
        Behaviour.parse(spec.params())
    except BehaviourError as exc:
        raise ConfigError(f"SMSGW_OPERATORS: {spec.name}: {exc}") from None


def _customer_rate(raw: str) -> Rate:
    try:
        return Rate.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"SMSGW_CUSTOMER_RATE={raw!r}: {exc}") from None


def _metrics_token(raw: str) -> str:
    if not 16 <= len(raw) <= 512 or not raw.isascii() or not raw.isprintable() or " " in raw:
        raise ConfigError("SMSGW_METRICS_TOKEN: expected 16-512 printable ASCII characters "
                          "without spaces (e.g. from `openssl rand -hex 32`)")
    return raw


def _cors_origins(raw: str) -> tuple[str, ...]:
    origins: list[str] = []
    for origin in (part.strip() for part in raw.split(",")):
        parts = urlsplit(origin)
        if origin != "*" and (parts.scheme not in ("http", "https") or not parts.hostname
                              or parts.path or parts.query or parts.fragment
                              or origin.endswith("/")):
            raise ConfigError(f"SMSGW_CORS_ORIGINS: {origin!r} is not an origin "
                              "(scheme://host[:port], e.g. https://app.example.com) or *")
        origins.append(origin)
    return tuple(origins)


def _log_setting(parse: Callable[[str], str]) -> Callable[[str], str]:
    def read(raw: str) -> str:
        try:
            return parse(raw)
        except logs.LogConfigError as exc:
            raise ConfigError(str(exc)) from None
    return read


# Settings with a syntax of their own (URLs, a list of operators, log levels),
# read by these instead of by their kind; the log settings as the log adapter reads them.
_OWN_SYNTAX: dict[str, Callable[[str], Any]] = {
    "database_url": _database_url,
    "broker_url": _broker_url,
    "operators": _operators,
    "customer_rate": _customer_rate,
    "metrics_token": _metrics_token,
    "cors_origins": _cors_origins,
    "log_level": _log_setting(logs.parse_log_level),
    "log_format": _log_setting(logs.parse_log_format),
}
