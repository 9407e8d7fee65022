"""Typed configuration from the environment. Every setting is in docs/configuration.md.

A bad value raises ConfigError with one line naming the variable; the CLI
prints it and exits 2. `Settings` is a msgspec Struct: a setting's kind
(`Count`, `Seconds`, …) holds its limits, checked by msgspec, and the kind's
entry in `_READINGS` the words for its problems.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import msgspec
from msgspec import Meta

from smsgw_adapters.observability import logs
from smsgw_adapters.webhooks.secret_box import parse_keys
from smsgw_app import operator_kinds
from smsgw_app.operator_kinds import OperatorSpec
from smsgw_core.routing import Routes, RoutesError
from smsgw_core.send_limits import Rate
from smsgw_core.webhooks import RETRY_DELAYS


class ConfigError(Exception):
    pass


class StartupError(Exception):
    """A dependency named by the configuration cannot be used (the CLI exits 2)."""


def cannot_use(variable: str, value: str, exc: BaseException) -> str:
    """One line for a setting whose target failed: `exc`'s first line, no password."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    # Printed and logged: a URL's password must not be, nor any echo of it in the reason.
    return f"cannot use {variable}={mask_password(value)!r}: {hide_password(reason, value)}"


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


# The kinds of value a setting can take. Their limits are msgspec constraints,
# checked by msgspec; each kind's one-line problems are in `_READINGS` below.
Count = Annotated[int, Meta(ge=1)]
Amount = Annotated[int, Meta(ge=0)]
Port = Annotated[int, Meta(ge=0, le=65535)]
Seconds = Annotated[float, Meta(gt=0)]
Share = Annotated[float, Meta(gt=0, le=1)]
QueueName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9._-]{1,200}$")]
Switch = bool
EventLoop = Literal["uvloop", "asyncio"]
# The seed routes (the Go service's): open to anyone who reaches the port, as
# the Go service's were (none), or behind the /v1 keys (key).
LegacyAuth = Literal["none", "key"]

def _env_name(field_name: str) -> str:
    return f"SMSGW_{field_name.upper()}"


class Settings(msgspec.Struct, frozen=True, kw_only=True, rename=_env_name):
    """Every setting; each is read from SMSGW_ and its name in capitals.

    The string under each field is its documentation: tools/settings_doc.py
    writes docs/configuration.md from them, and a test fails on a field
    without one.
    """

    database_url: str = "sqlite+aiosqlite:///./smsgw.db"
    """The database: a SQLite file (WAL mode), or MySQL/MariaDB as
    `mysql+asyncmy://USER[:PASSWORD]@HOST[:PORT]/DATABASE`."""
    broker_url: str = "memory://"
    """The queue: `memory://` is the in-process bus (`smsgw serve` only);
    `amqp://USER:PASSWORD@HOST:PORT/` is RabbitMQ."""
    operators: tuple[OperatorSpec, ...] = (OperatorSpec("A", "sim://"), OperatorSpec("B", "sim://"))
    """Operators in failover order, `NAME=URL,…`: `sim://[?params]` in-process,
    `http(s)://HOST:PORT` over HTTP, `smpp(s)://SYSTEM_ID:PASSWORD@HOST:PORT[?…]`
    over SMPP 3.4; `?tps=N` on a URL caps that operator at N sends per second
    over every worker process, `?receipt_token=…` lets it post receipts
    ([operators.md](operators.md#configuring-operators))."""
    price_normal: Amount = 1
    """Price of one segment to one recipient, normal."""
    price_express: Amount = 3
    """The same, express."""
    workers: Count = 64
    """Messages delivered at once per worker process (the normal queue's
    consumers with RabbitMQ, each message a bundle of deliveries of up to
    `SMSGW_PUBLISH_BUNDLE` recipients; all in-process workers in embedded
    mode). Those in flight together share their claim and outcome
    transactions, so more at once means bigger groups and fewer commits per
    message."""
    express_workers: Count = 16
    """The express queue's consumers per worker process (RabbitMQ)."""
    delivery_limit: Count = 20
    """Deliveries of one message before RabbitMQ dead-letters it."""
    express_queue: QueueName = "EXPRESS_QUEUE"
    """RabbitMQ queue of express messages."""
    normal_queue: QueueName = "NORMAL_QUEUE"
    """RabbitMQ queue of normal messages."""
    dead_letter_queue: QueueName = "SMSGW_DEAD_LETTER"
    """Where undecodable messages and messages past the delivery limit go, with
    the reason."""
    prefetch: Count = 32
    """Unacknowledged express messages a worker process may hold (at least
    `SMSGW_EXPRESS_WORKERS`); the normal queue's consumers hold one message
    each, no more, so that normal traffic waits in the outbox in its fair
    order."""
    relay_express_workers: Count = 4
    """Relay tasks publishing express events, per relay process."""
    relay_normal_workers: Count = 2
    """Relay tasks publishing normal events, per relay process."""
    relay_batch: Count = 100
    """Events one relay task claims and publishes at once."""
    relay_ahead: Count = 500
    """Normal deliveries the broker's queue may hold at most: each relay keeps
    it just full enough that the workers never find it empty (it doubles its
    target when the queue ran dry, shrinks it when the queue did not drain),
    and the rest waits in the outbox, where the fair order across customers is
    made."""
    delivery_chunk: Count = 20
    """Recipients per delivery at most: a larger SMS is published as several,
    each claimed, sent and recorded on its own (a worker holds a delivery
    until its last recipient is sent)."""
    publish_bundle: Count = 20
    """Recipients per RabbitMQ message at most: the relay publishes a batch's
    small SMS of one lane together (a delivery of more recipients goes alone),
    the worker delivers a bundle's at once and acks it when all are settled, so
    the broker's and both ends' cost per message is shared while a message
    stays no more work than a chunk (1: a message per delivery;
    [rabbitmq.md](rabbitmq.md))."""
    outbox_retention_s: Seconds = 3600.0
    """A published event is deleted this long after its SMS finished."""
    operator_timeout_s: Seconds = 5.0
    """How long an HTTP operator may take to answer."""
    operator_retries: Amount = 1
    """Extra tries of a transient failure on the same operator."""
    breaker_window_s: Seconds = 10.0
    """An operator's circuit judges the calls that finished in the last this
    many seconds (a call with its retries is one call)."""
    breaker_min_calls: Count = 20
    """Calls the window must hold before the circuit may open."""
    breaker_failure_rate: Share = 0.5
    """Share of failed calls in the window (above 0, at most 1) that opens the
    circuit."""
    breaker_reset_s: Seconds = 5.0
    """Seconds an open circuit waits before letting a trial send through.
    (`SMSGW_BREAKER_THRESHOLD`, consecutive failures, is gone: setting it is
    refused.)"""
    redrive_after_s: Seconds = 60.0
    """A published SMS whose recipients are still waiting this long after
    publishing, while its queue holds no message, was lost (purged,
    dead-lettered): it is published again."""
    message_ttl_s: Seconds = 86_400.0
    """An SMS's validity, from acceptance: whatever is still unfinished then
    (the broker was down, no operator could take it) fails as `expired` and is
    refunded, once."""
    delivery_lease_s: Seconds = 60.0
    """How long a recipient being sent (SENDING) belongs to the worker that
    took it; past it, that worker is taken to be dead and the recipient is sent
    again. Keep it above the slowest delivery (operator timeout times tries
    times operators)."""
    shutdown_timeout_s: Seconds = 20.0
    """On SIGTERM, how long in-flight work may take before it is handed back."""
    refund_undelivered: Switch = False
    """`true`: a recipient an operator's receipt reports `undelivered` or
    `expired` is refunded (once, as a failed one is); `false`: it is not, the
    operator charged us for it ([operators.md](operators.md#delivery-receipts))."""
    receipt_orphan_ttl_s: Seconds = 3600.0
    """How long a receipt naming a message id no recipient has is kept, waiting
    for the operator's answer that names it; then it is dropped and counted as
    an orphan."""
    webhook_timeout_s: Seconds = 10.0
    """How long a customer's webhook endpoint may take to answer an event; past
    it the attempt failed and is retried ([webhooks.md](webhooks.md))."""
    webhook_retry_s: tuple[float, ...] = tuple(d.total_seconds() for d in RETRY_DELAYS)
    """The waits, in seconds and comma-separated, after each failed webhook
    attempt (each ±20 %); after the last the event is dead. The default,
    `5,300,1800,7200,18000,36000,50400,72000,72000`, makes 10 attempts over
    about 3 days."""
    webhook_allow_http: Switch = False
    """`true`: webhook URLs may be `http://` (tests, private networks); `false`:
    `https://` only."""
    webhook_allow_private: Switch = False
    """`true`: webhook URLs may resolve to loopback, private or link-local
    addresses (tests, private networks); `false`: such a URL is refused when
    registered and again at every connection."""
    webhook_key: str = ""
    """The key webhook signing secrets are sealed with in the database: 32
    random bytes in base64 (`openssl rand -base64 32`); several, comma-separated,
    while the key is changed (the first seals, every one opens). Every process
    of a deployment needs the same. Unset: the key in `SMSGW_WEBHOOK_KEY_FILE`."""
    webhook_key_file: str = "smsgw-webhook.key"
    """Where the webhook sealing key is kept when `SMSGW_WEBHOOK_KEY` is unset:
    made (mode 0600) by the first api, serve or webhooks process. Fine for one
    host; a deployment over several hosts sets `SMSGW_WEBHOOK_KEY` instead."""
    webhook_concurrency: Count = 128
    """Webhook attempts in flight in one `smsgw webhooks` (or `serve`) process."""
    webhook_per_customer: Count = 16
    """Of those, at most this many for one customer: a slow endpoint holds its
    own share, never another customer's."""
    log_level: str = logs.DEFAULT_LOG_LEVEL
    """`DEBUG`, `INFO`, `WARNING` or `ERROR`."""
    log_format: str = logs.DEFAULT_LOG_FORMAT
    """`json`: one JSON object per line on stdout, with the trace id, and phone
    numbers and message text masked at INFO and above; `text`: readable lines
    for development."""
    metrics_port: Port = 9464
    """Where `smsgw relay` and `smsgw worker` serve their Prometheus metrics
    (`api` and `serve` use the API's `/metrics`); `0` turns it off. A port
    already taken is logged and the process runs without metrics."""
    max_backlog: Amount = 100_000
    """Due outbox events (all priorities) beyond which `POST /sms/send` answers
    503 with `Retry-After` and writes nothing; the API reads the backlog every
    second. `0` turns it off."""
    accept_batch: Count = 200
    """Sends the API accepts in one database transaction at most: concurrent
    sends share a transaction (one commit, one flush) instead of taking one
    each; `1` gives every send its own. A send with an `Idempotency-Key` always
    goes alone."""
    event_loop: EventLoop = "uvloop"
    """The processes' event loop: `uvloop` (libuv, less CPU per request) or
    `asyncio` (the standard library's)."""
    http_request_timeout_s: Seconds = 10.0
    """A request's headers and body must arrive within this many seconds of the
    connection opening (or of the request's first byte); otherwise the
    connection is closed."""
    http_idle_timeout_s: Seconds = 5.0
    """A keep-alive connection with no request for this long is closed."""
    http_max_connections: Count = 1000
    """Open connections (or requests in flight) the API serves, per process;
    while more are open, a request is answered 503 with `Retry-After` and its
    connection closed."""
    legacy_auth: LegacyAuth = "none"
    """`none`: the seed routes (`/sms/send`, `/sms/history`, `/balance`,
    `/balance/add`) are open to anyone who reaches the port, as the Go
    service's were (a WARNING at start says so); `key`: they take a Bearer API
    key as `/v1` does (see [Customers and keys](api.md#customers-and-keys-the-v1-api))."""
    routes: Routes | None = None
    """Which operators serve which numbers, `PREFIXES=OPERATORS;…` by number
    prefix as the customer wrote it (`0912,+98912=MCI,B;*=A,B`): the longest
    matching prefix's operators, in failover order; `*` for the rest. A
    recipient no route serves is refused when sent (400). Unset: every
    recipient to every operator, in `SMSGW_OPERATORS` order
    ([operators.md](operators.md#routes))."""
    customer_rate: Rate | None = None
    """Every customer's send limit, `RATE/s` or `RATE/s,burst=N` in recipients
    (e.g. `200/s,burst=1000`; `RATE/s` alone: a burst of one second's worth),
    unless the customer has its own (`PATCH /v1/customers/{id}`); over it,
    sends answer 429 with `Retry-After`. Unset: unlimited. Per API process:
    see [Send limits](api.md#send-limits)."""
    metrics_token: str = ""
    """When set (16 to 512 printable ASCII characters, no spaces), `/metrics` and
    every `SMSGW_METRICS_PORT` answer only `Authorization: Bearer <token>`."""
    cors_origins: tuple[str, ...] = ()
    """Browser origins allowed to call the API from their pages,
    `https://app.example.com,http://localhost:3000` (or `*`): CORS headers for
    them, allowing `Authorization`, `Content-Type` and `Idempotency-Key`.
    Unset: no CORS headers at all, so no other site's page can read the API's
    answers."""

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
        settings = cls(**values)
        _routes_name_operators(settings)
        return settings

    def routing(self) -> Routes:
        """The routes in force: SMSGW_ROUTES, or every operator for every number."""
        return self.routes or Routes.everything_to([spec.name for spec in self.operators])


_SWITCHED = {"true": True, "1": True, "yes": True, "on": True,
             "false": False, "0": False, "no": False, "off": False}


def _switch(raw: str) -> bool:
    try:
        return _SWITCHED[raw.strip().lower()]
    except KeyError:
        raise ValueError(raw) from None


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
    Switch: _Reading(_switch, "expected true or false", ""),
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
        spec = _capped(_with_receipt_token(OperatorSpec(name, url)))
        url = mask_password(_masked_token(url))  # the URL as errors show it
        kind = operator_kinds.KINDS.get(spec.scheme)
        if kind is None:
            raise ConfigError(
                f"SMSGW_OPERATORS: {name}={url!r}: expected {operator_kinds.url_forms()}")
        problem = kind.problem(spec)
        if problem is not None:
            raise ConfigError(f"SMSGW_OPERATORS: {name}={url!r}: {problem}; "
                              f"expected {kind.url_form}")
        specs.append(spec)
    return tuple(specs)


_TOKEN = "receipt_token"
_TOKEN_TEXT = re.compile(r"[\x21-\x7e]{1,200}")  # visible ASCII: a Bearer header carries it


def _taken_out(spec: OperatorSpec, name: str) -> tuple[str | None, str]:
    """The URL parameter `name` (the last, if repeated; ours, not the operator's:
    never sent to it) and the spec's URL without it."""
    parts = urlsplit(spec.url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    values = [value for key, value in params if key == name]
    rest = urlencode([(key, value) for key, value in params if key != name])
    # By hand: urlunsplit would write sim:// without its two slashes.
    url = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{rest}" if rest else "")
    return (values[-1] if values else None), url + (f"#{parts.fragment}" if parts.fragment
                                                   else "")


def _with_receipt_token(spec: OperatorSpec) -> OperatorSpec:
    """The spec with its `receipt_token` parameter, if any, read out of the URL."""
    token, url = _taken_out(spec, _TOKEN)
    if token is None:
        return spec
    if not _TOKEN_TEXT.fullmatch(token):
        raise ConfigError(f"SMSGW_OPERATORS: {spec.name}: receipt_token: expected 1-200 "
                          "visible ASCII characters (no spaces)")
    return OperatorSpec(spec.name, url, spec.tps, token)


def _masked_token(url: str) -> str:
    return re.sub(rf"({_TOKEN}=)[^&#]*", r"\1***", url)


def _capped(spec: OperatorSpec) -> OperatorSpec:
    """The spec with its `tps` parameter, if any, read out of the URL."""
    cap, url = _taken_out(spec, "tps")
    if cap is None:
        return spec
    try:
        tps = float(cap)
    except ValueError:
        tps = math.nan
    if not 0 < tps <= 1_000_000:
        raise ConfigError(f"SMSGW_OPERATORS: {spec.name}: tps={cap!r}: expected sends "
                          "per second, above 0 and at most 1000000")
    return OperatorSpec(spec.name, url, tps, spec.receipt_token)


def _routes(raw: str) -> Routes:
    try:
        return Routes.parse(raw)
    except RoutesError as exc:
        raise ConfigError(f"SMSGW_ROUTES: {exc}") from None


def _routes_name_operators(settings: Settings) -> None:
    if settings.routes is None:
        return
    unknown = settings.routes.operators() - {spec.name for spec in settings.operators}
    if unknown:
        raise ConfigError(f"SMSGW_ROUTES: {', '.join(sorted(unknown))}: not in SMSGW_OPERATORS")


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


def _webhook_key(raw: str) -> str:
    try:
        parse_keys(raw)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return raw


def _webhook_key_file(raw: str) -> str:
    if not raw.strip() or "\0" in raw or len(raw) > 4096:
        raise ConfigError("SMSGW_WEBHOOK_KEY_FILE: expected a file's path")
    return raw


def _webhook_retry_s(raw: str) -> tuple[float, ...]:
    try:
        waits = tuple(float(part) for part in raw.split(","))
    except ValueError:
        waits = ()
    if not 1 <= len(waits) <= 50 or not all(0 < w <= 7 * 86_400 for w in waits):
        raise ConfigError(f"SMSGW_WEBHOOK_RETRY_S={raw[:80]!r}: expected 1 to 50 comma-"
                          "separated seconds, each above 0 and at most 604800 (7 days)")
    return waits


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
    "routes": _routes,
    "metrics_token": _metrics_token,
    "cors_origins": _cors_origins,
    "webhook_key": _webhook_key,
    "webhook_retry_s": _webhook_retry_s,
    "webhook_key_file": _webhook_key_file,
    "log_level": _log_setting(logs.parse_log_level),
    "log_format": _log_setting(logs.parse_log_format),
}
