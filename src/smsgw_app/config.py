"""Typed configuration from the environment. Every setting is in the README's table.

A bad value raises ConfigError with one line naming the variable; the CLI
prints it and exits 2.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit


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
    url: str

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    def params(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.url).query).items()}


SIM_PARAMS = {"fail_rate", "latency_ms", "reject_prefix", "seed"}
_QUEUE_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = "sqlite+aiosqlite:///./smsgw.db"
    broker_url: str = "memory://"
    operators: tuple[OperatorSpec, ...] = field(
        default_factory=lambda: (OperatorSpec("A", "sim://"), OperatorSpec("B", "sim://"))
    )
    price_normal: int = 1
    price_express: int = 3
    # Deliveries in flight per worker process: they share their claim and outcome
    # transactions, so more at once means bigger groups and fewer commits per message.
    workers: int = 64
    express_workers: int = 16
    delivery_limit: int = 20
    express_queue: str = "EXPRESS_QUEUE"
    normal_queue: str = "NORMAL_QUEUE"
    dead_letter_queue: str = "SMSGW_DEAD_LETTER"
    prefetch: int = 32
    relay_express_workers: int = 4
    relay_normal_workers: int = 2
    relay_batch: int = 100
    outbox_retention_s: float = 3600.0
    operator_timeout_s: float = 5.0
    operator_retries: int = 1
    # An operator's circuit opens when, of the calls that finished in the last
    # window (at least min_calls), at least failure_rate failed; it stays open reset_s.
    breaker_window_s: float = 10.0
    breaker_min_calls: int = 20
    breaker_failure_rate: float = 0.5
    breaker_reset_s: float = 5.0
    # A published delivery whose recipients are still PENDING this long after
    # publishing, while its queue holds nothing, was lost: it is published again.
    redrive_after_s: float = 60.0
    message_ttl_s: float = 86_400.0  # validity: past it, unfinished recipients fail "expired"
    delivery_lease_s: float = 60.0  # a SENDING recipient's claim; past it, claimable again
    shutdown_timeout_s: float = 20.0
    log_level: str = "INFO"
    log_format: str = "json"  # or "text", for development
    metrics_port: int = 9464  # `smsgw relay` and `smsgw worker`; 0: no metrics server
    max_backlog: int = 100_000  # due outbox events over which sends are refused; 0: no limit
    accept_batch: int = 200  # concurrent sends sharing one transaction at most; 1: each alone
    event_loop: str = "uvloop"  # or "asyncio", the standard library's
    # A request (headers and body) must arrive whole within this of the connection
    # opening or its first byte; an idle keep-alive connection closes after the
    # idle timeout; connections past the cap are answered 503.
    http_request_timeout_s: float = 10.0
    http_idle_timeout_s: float = 5.0
    http_max_connections: int = 1000

    @property
    def embedded_bus(self) -> bool:
        return self.broker_url == "memory://"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        default = cls()
        _no_breaker_threshold(env)
        return cls(
            database_url=_database_url(env.get("SMSGW_DATABASE_URL", default.database_url)),
            broker_url=_broker_url(env.get("SMSGW_BROKER_URL", default.broker_url)),
            operators=_operators(env.get("SMSGW_OPERATORS", "A=sim://,B=sim://")),
            price_normal=_int(env, "SMSGW_PRICE_NORMAL", default.price_normal, minimum=0),
            price_express=_int(env, "SMSGW_PRICE_EXPRESS", default.price_express, minimum=0),
            workers=_int(env, "SMSGW_WORKERS", default.workers, minimum=1),
            express_workers=_int(env, "SMSGW_EXPRESS_WORKERS", default.express_workers, minimum=1),
            delivery_limit=_int(env, "SMSGW_DELIVERY_LIMIT", default.delivery_limit, minimum=1),
            express_queue=_name(env, "SMSGW_EXPRESS_QUEUE", default.express_queue),
            normal_queue=_name(env, "SMSGW_NORMAL_QUEUE", default.normal_queue),
            dead_letter_queue=_name(env, "SMSGW_DEAD_LETTER_QUEUE", default.dead_letter_queue),
            prefetch=_int(env, "SMSGW_PREFETCH", default.prefetch, minimum=1),
            relay_express_workers=_int(
                env, "SMSGW_RELAY_EXPRESS_WORKERS", default.relay_express_workers, minimum=1
            ),
            relay_normal_workers=_int(
                env, "SMSGW_RELAY_NORMAL_WORKERS", default.relay_normal_workers, minimum=1
            ),
            relay_batch=_int(env, "SMSGW_RELAY_BATCH", default.relay_batch, minimum=1),
            outbox_retention_s=_float(
                env, "SMSGW_OUTBOX_RETENTION_S", default.outbox_retention_s
            ),
            operator_timeout_s=_float(
                env, "SMSGW_OPERATOR_TIMEOUT_S", default.operator_timeout_s
            ),
            operator_retries=_int(
                env, "SMSGW_OPERATOR_RETRIES", default.operator_retries, minimum=0
            ),
            breaker_window_s=_float(env, "SMSGW_BREAKER_WINDOW_S", default.breaker_window_s),
            breaker_min_calls=_int(
                env, "SMSGW_BREAKER_MIN_CALLS", default.breaker_min_calls, minimum=1
            ),
            breaker_failure_rate=_rate(
                env, "SMSGW_BREAKER_FAILURE_RATE", default.breaker_failure_rate
            ),
            breaker_reset_s=_float(env, "SMSGW_BREAKER_RESET_S", default.breaker_reset_s),
            redrive_after_s=_float(env, "SMSGW_REDRIVE_AFTER_S", default.redrive_after_s),
            message_ttl_s=_float(env, "SMSGW_MESSAGE_TTL_S", default.message_ttl_s),
            delivery_lease_s=_float(env, "SMSGW_DELIVERY_LEASE_S", default.delivery_lease_s),
            shutdown_timeout_s=_float(
                env, "SMSGW_SHUTDOWN_TIMEOUT_S", default.shutdown_timeout_s
            ),
            log_level=_log_level(env.get("SMSGW_LOG_LEVEL", default.log_level)),
            log_format=_log_format(env.get("SMSGW_LOG_FORMAT") or default.log_format),
            metrics_port=_port(env, "SMSGW_METRICS_PORT", default.metrics_port),
            max_backlog=_int(env, "SMSGW_MAX_BACKLOG", default.max_backlog, minimum=0),
            accept_batch=_int(env, "SMSGW_ACCEPT_BATCH", default.accept_batch, minimum=1),
            event_loop=_choice(env, "SMSGW_EVENT_LOOP", default.event_loop, ("uvloop", "asyncio")),
            http_request_timeout_s=_float(
                env, "SMSGW_HTTP_REQUEST_TIMEOUT_S", default.http_request_timeout_s
            ),
            http_idle_timeout_s=_float(
                env, "SMSGW_HTTP_IDLE_TIMEOUT_S", default.http_idle_timeout_s
            ),
            http_max_connections=_int(
                env, "SMSGW_HTTP_MAX_CONNECTIONS", default.http_max_connections, minimum=1
            ),
        )


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default, minimum=0)
    if value > 65535:
        raise ConfigError(f"{name}={str(value)!r}: a TCP port is at most 65535 (0: off)")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number of seconds") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r}: must be positive")
    return value


def _rate(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a share, e.g. 0.5") from None
    if not 0 < value <= 1:
        raise ConfigError(f"{name}={raw!r}: must be above 0 and at most 1")
    return value


def _no_breaker_threshold(env: Mapping[str, str]) -> None:
    # Its meaning is gone (consecutive failed tries); ignoring it would silently
    # run with other settings than the ones the deployment believes it set.
    if "SMSGW_BREAKER_THRESHOLD" in env:
        raise ConfigError(
            "SMSGW_BREAKER_THRESHOLD is no longer read: the circuit opens on a failure rate"
            " (SMSGW_BREAKER_WINDOW_S, SMSGW_BREAKER_MIN_CALLS, SMSGW_BREAKER_FAILURE_RATE)"
        )


def _name(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    if not _QUEUE_NAME.fullmatch(value):
        raise ConfigError(f"{name}={value!r}: use letters, digits, '.', '_' or '-'")
    return value


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
        spec = OperatorSpec(name, url)
        if spec.scheme == "sim":
            _check_sim_params(spec)
        elif spec.scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ConfigError(
                f"SMSGW_OPERATORS: {name}={url!r}: expected sim://[?params] or http(s)://HOST[:PORT]"
            )
        specs.append(spec)
    return tuple(specs)


def _check_sim_params(spec: OperatorSpec) -> None:
    params = spec.params()
    unknown = set(params) - SIM_PARAMS
    if unknown:
        raise ConfigError(
            f"SMSGW_OPERATORS: {spec.name}: unknown parameter(s) {', '.join(sorted(unknown))}"
        )
    try:
        fail_rate = float(params.get("fail_rate", 0))
        latency_ms = float(params.get("latency_ms", 0))
        if "seed" in params:
            int(params["seed"])
    except ValueError:
        raise ConfigError(f"SMSGW_OPERATORS: {spec.name}: parameters must be numbers") from None
    if not 0 <= fail_rate <= 1:
        raise ConfigError(f"SMSGW_OPERATORS: {spec.name}: fail_rate must be between 0 and 1")
    if latency_ms < 0:
        raise ConfigError(f"SMSGW_OPERATORS: {spec.name}: latency_ms must not be negative")


def _log_level(level: str) -> str:
    if level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(f"SMSGW_LOG_LEVEL={level!r}: expected DEBUG, INFO, WARNING or ERROR")
    return level.upper()


def _log_format(value: str) -> str:
    if value.strip().lower() not in {"json", "text"}:
        raise ConfigError(f"SMSGW_LOG_FORMAT={value!r}: expected json or text")
    return value.strip().lower()


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise ConfigError(f"{name}={value!r}: expected {' or '.join(choices)}")
    return value
