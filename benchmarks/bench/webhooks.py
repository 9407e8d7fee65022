"""The webhooks scenario: end to end twice at the same load, without status webhooks
and with one for every recipient (issue 27's bar: delivered/s on ÷ off ≥ 0.8).

Both halves run the processes and settings of the receipts scenario's "off" half
(two operator simulators with receipt tokens and no receipts, two APIs, the
relay, a worker per lane), all with the same SMSGW_WEBHOOK_* settings. The on
half adds, before its load:

- a receiver (webhook_sink.py: counts, answers 200, keeps a sample) on
  `webhooks_receiver_ports` ports of 127.0.0.1;
- one `smsgw webhooks` process (its group "webhooks" in the CPU sample);
- an endpoint for every customer of the load test, subscribed to every event
  type: an API key made for each (in this process, through the gateway's Keys
  service), then `PUT /v1/webhook` with it, customer c to the receiver's port
  c mod ports, path /c/<c> (the secret each PUT answers is what the sample is
  verified with).

No operator reports receipts, so each recipient makes one event (message.sent,
or message.failed). A half waits for every recipient to leave PENDING and
SENDING; the on half then until smsgw_webhook_attempts_total counts an outcome
(delivered or dead) for every event written. The tables, the metrics and the
receiver are read after that; this module reads and sums, figures.py makes
the figures.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from benchmarks.bench import receipts as rx
from benchmarks.bench.cpu import CpuSample
from benchmarks.bench.plan import USERS
from benchmarks.bench.processes import Processes, ScenarioError, get_json, wait_http
from benchmarks.bench.services import Services
from benchmarks.harness.net import free_port

if TYPE_CHECKING:
    from benchmarks.bench.scenarios import Scenarios

SINK = Path(__file__).resolve().parent / "webhook_sink.py"
EVENT_TYPES = ("message.sent", "message.delivered", "message.undelivered", "message.failed",
               "message.expired")  # every type a customer can subscribe to
OUTCOMES = ("delivered", "pending", "dead")  # smsgw_webhook_attempts_total's
REGISTER_CONCURRENCY = 16
SAMPLE_EVERY = 100  # the receiver keeps one request in this many, for verification
TIMESTAMP_TOLERANCE_S = 300  # what standardwebhooks' verify allows between sign and receipt
DELIVERED = "delivered"


def settings(key: str) -> dict[str, str]:
    """The webhook settings of every process of both halves: a receiver on 127.0.0.1."""
    return {"SMSGW_WEBHOOK_KEY": key, "SMSGW_WEBHOOK_ALLOW_HTTP": "1",
            "SMSGW_WEBHOOK_ALLOW_PRIVATE": "1"}


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def endpoint_url(ports: Sequence[int], customer: int) -> str:
    return f"http://127.0.0.1:{ports[customer % len(ports)]}/c/{customer}"


# ---------------------------------------------------------------- the half


def run_half(bench: Scenarios, procs: Processes, name: str, on: bool, key: str
             ) -> dict[str, Any]:
    """One half of the webhooks scenario (see the module's docstring)."""
    plan, gateway, services = bench.plan, bench.gateway, bench.services
    gateway.truncate()
    truncate(services)
    env = settings(key)
    tokens = {op: f"bench-{gateway.run_id}-{op}" for op in ("A", "B")}
    operators = gateway.start_operators(procs, extra_args={"A": ["--seed", "1"],
                                                           "B": ["--seed", "2"]})
    spec = ",".join(f"{op}=http://{urlsplit(url).netloc}?receipt_token={tokens[op]}"
                    for op, url in operators.items())
    urls = gateway.start_apis(procs, name, (), SMSGW_OPERATORS=spec, **env)
    gateway.start_background(procs, name, "relay", SMSGW_OPERATORS=spec, **env)
    for lane in ("express", "normal"):  # as Gateway.start_workers, with the same settings
        gateway.start_background(procs, name, "worker", "--lane", lane, name=f"worker-{lane}",
                                 SMSGW_OPERATORS=spec, **env)
    from smsgw_app.config import Settings

    read = Settings.from_env(gateway.env(name, **env))
    hooks: dict[str, Any] = {
        "settings": {"SMSGW_WEBHOOK_CONCURRENCY": read.webhook_concurrency,
                     "SMSGW_WEBHOOK_PER_CUSTOMER": read.webhook_per_customer,
                     "receiver_ports": plan.webhooks_receiver_ports}}
    secrets: dict[int, str] = {}
    metrics = receiver = ""
    if on:
        ports = [free_port() for _ in range(plan.webhooks_receiver_ports)]
        sink = procs.start("receiver", "receiver",
                           [sys.executable, str(SINK), "--ports", ",".join(map(str, ports)),
                            "--keep-every", str(SAMPLE_EVERY)], gateway.env("receiver"))
        receiver = f"http://127.0.0.1:{ports[0]}"
        wait_http(f"{receiver}/_health", sink, "the webhook receiver", procs.log("receiver"))
        metrics = gateway.start_background(procs, name, "webhooks", **env)
        started = time.monotonic()
        secrets = register(services.database_url, urls, range(1, USERS + 1),
                           lambda c: endpoint_url(ports, c))
        hooks["endpoints"] = len(secrets)
        hooks["registered_in_s"] = round(time.monotonic() - started, 1)

    locks = rx.innodb(services)
    sample = CpuSample(procs.pids(), "loadtest")
    doc = bench.loadtest(name, urls, rps=plan.e2e_rps, duration=plan.webhooks_seconds,
                         concurrency=plan.e2e_concurrency, seed=1)
    delivered_after = rx.poll(lambda: rx.unfinished(services) == 0, plan.delivery_timeout_s)
    if on:
        written = services.count("webhook_events")

        def settled() -> bool:
            counts = scrape(metrics)
            return float(counts.get("delivered", 0.0)) + float(counts.get("dead", 0.0)) \
                >= written

        hooks["settled_after_delivery_s"] = rx.poll(settled, plan.webhooks_settle_timeout_s)
    cpu = sample.done()
    result: dict[str, Any] = {
        "loadtest": doc, "cpu": cpu, "delivery": rx.outcome(services)["delivery"],
        "delivered_after_load_s": delivered_after,
        "innodb": rx.since(locks, rx.innodb(services)),
        "operators": {op: get_json(f"{url}/stats") for op, url in operators.items()},
    }
    if on:
        hooks.update(read_events(services))
        hooks["metrics"] = scrape(metrics)
        hooks["receiver"] = get_json(f"{receiver}/_stats")
        kept = get_json(f"{receiver}/_sample").get("requests") or []
        hooks["verified"] = verify_sample(kept, secrets)
    result["webhooks"] = hooks
    return result


def truncate(services: Services) -> None:
    for table in ("webhook_events", "webhook_attempts", "webhook_endpoints"):
        services.sql(f"TRUNCATE TABLE {table}")


# ---------------------------------------------------------------- the endpoints


def register(database_url: str, api_urls: Sequence[str], customers: Sequence[int],
             url_of: Callable[[int], str]) -> dict[int, str]:
    """An API key for each customer, then its endpoint by `PUT /v1/webhook` with it
    (every event type, to `url_of(customer)`), the APIs taking turns: each one's
    secret, as the PUT answered it."""
    return asyncio.run(_register(database_url, api_urls, customers, url_of))


async def _register(database_url: str, api_urls: Sequence[str], customers: Sequence[int],
                    url_of: Callable[[int], str]) -> dict[int, str]:
    import aiohttp

    from smsgw_app.database import opened
    from smsgw_core.services.keys import NewKey

    gate = asyncio.Semaphore(REGISTER_CONCURRENCY)
    async with opened(database_url, migrate=False) as database:
        keys = database.keys()

        async def key(customer: int) -> str:
            async with gate:
                return (await keys.create(NewKey(customer, "bench webhooks"))).key

        made = await asyncio.gather(*(key(c) for c in customers))

    async with aiohttp.ClientSession() as session:
        async def put(n: int, customer: int, token: str) -> tuple[int, str]:
            async with gate, session.put(
                    f"{api_urls[n % len(api_urls)]}/v1/webhook",
                    json={"url": url_of(customer), "events": list(EVENT_TYPES)},
                    headers={"Authorization": f"Bearer {token}"}) as answer:
                text = await answer.text()
                if answer.status != 200:
                    raise ScenarioError(f"PUT /v1/webhook for customer {customer} answered "
                                        f"{answer.status}: {text[:300]}")
                return customer, str(json.loads(text)["secret"])

        done = await asyncio.gather(*(put(n, c, t) for n, (c, t)
                                      in enumerate(zip(customers, made, strict=True))))
    return dict(done)


# ---------------------------------------------------------------- the metrics


def attempt_metrics(text: str) -> dict[str, float]:
    """The webhooks process's attempts: smsgw_webhook_attempts_total by outcome
    (delivered, pending, dead), smsgw_webhook_attempt_seconds' sum and count; and its
    SQL: smsgw_db_statement_duration_seconds' count and sum by operation (db_select_count,
    db_select_sum, ...) and over all of them (db_count, db_sum)."""
    found: dict[str, float] = dict.fromkeys(OUTCOMES, 0.0)
    for name, labels, value in rx.samples(text):
        if name in ("smsgw_db_statement_duration_seconds_count",
                    "smsgw_db_statement_duration_seconds_sum"):
            suffix = name.rsplit("_", 1)[1]
            for key in (f"db_{labels.get('operation', '?')}_{suffix}", f"db_{suffix}"):
                found[key] = found.get(key, 0.0) + value
            continue
        if name == "smsgw_webhook_attempts_total":
            outcome = labels.get("outcome", "?")
            found[outcome] = found.get(outcome, 0.0) + value
        elif name in ("smsgw_webhook_attempt_seconds_sum", "smsgw_webhook_attempt_seconds_count"):
            key = "attempt_seconds_" + name.rsplit("_", 1)[1]
            found[key] = found.get(key, 0.0) + value
        elif name == "smsgw_webhook_oldest_pending_seconds":
            found["oldest_pending_s"] = value
    return found


def scrape(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return attempt_metrics(answer.read().decode())
    except OSError as exc:
        return {"error": str(exc)}


# ---------------------------------------------------------------- the tables


def read_events(services: Services) -> dict[str, Any]:
    """The events and attempts as the tables have them (summarize_events)."""
    by = [(str(s), str(t), int(n)) for s, t, n in services.sql(
        "SELECT state, type, COUNT(*) FROM webhook_events GROUP BY state, type")]
    first, last = services.sql("SELECT MIN(created_at), MAX(finished_at) FROM webhook_events "
                               f"WHERE state = '{DELIVERED}'")[0]
    waits = [int(r[0]) for r in services.sql(
        "SELECT TIMESTAMPDIFF(MICROSECOND, created_at, finished_at) FROM webhook_events "
        f"WHERE state = '{DELIVERED}'")]
    codes = [(r[0], int(r[1])) for r in services.sql(
        "SELECT status_code, COUNT(*) FROM webhook_attempts GROUP BY status_code")]
    errors = [(str(r[0]), int(r[1])) for r in services.sql(
        "SELECT error, COUNT(*) FROM webhook_attempts WHERE status_code IS NULL "
        "GROUP BY error ORDER BY COUNT(*) DESC LIMIT 5")]
    first_sms, last_sms = services.sql(
        "SELECT MIN(created_at), MAX(updated_at) FROM sms_status")[0]
    return summarize_events(by, first, last, waits, codes, errors, first_sms, last_sms)


def summarize_events(by: Sequence[tuple[str, str, int]], first: datetime | None,
                     last: datetime | None, waits_us: Sequence[int],
                     codes: Sequence[tuple[int | None, int]],
                     errors: Sequence[tuple[str, int]], first_sms: datetime | None,
                     last_sms: datetime | None) -> dict[str, Any]:
    """"events": written, by state and type, delivered_per_s (delivered over the span
    from the first written to the last delivered: an attempt's start, the events of
    one record sharing the latest), notified_per_s (over the span from the first SMS
    accepted to the last event delivered: the end-to-end rate counting a recipient
    done when its customer was told), the wait from written to the delivering
    attempt, and the last delivered after the last SMS terminal (`last_sms`: the
    latest move of any recipient); "attempts": total, failed (not 2xx), by status
    code ("none": no answer) and the commonest errors."""
    by_state: dict[str, int] = {}
    by_type: dict[str, int] = {}
    for state, kind, n in by:
        by_state[state] = by_state.get(state, 0) + n
        by_type[kind] = by_type.get(kind, 0) + n
    delivered = by_state.get(DELIVERED, 0)
    events: dict[str, Any] = {
        "written": sum(by_state.values()), "delivered": delivered,
        "pending": by_state.get("pending", 0), "dead": by_state.get("dead", 0),
        "by_type": by_type, "delivered_per_s": None, "notified_per_s": None,
        "latency_ms": None, "last_after_delivery_s": None,
    }
    if first is not None and last is not None:
        span = (last - first).total_seconds()
        events["span_s"] = round(span, 3)
        events["delivered_per_s"] = round(delivered / span, 3) if span > 0 else None
        if last_sms is not None:
            events["last_after_delivery_s"] = round((last - last_sms).total_seconds(), 3)
        if first_sms is not None and last > first_sms:
            events["notified_per_s"] = round(
                delivered / (last - first_sms).total_seconds(), 3)
    if waits_us:
        ordered = sorted(waits_us)
        events["latency_ms"] = {
            "mean": round(sum(ordered) / len(ordered) / 1000, 1),
            **{f"p{q}": round(_rank(ordered, q / 100) / 1000, 1) for q in (50, 99)},
            "max": round(ordered[-1] / 1000, 1)}
    by_code = {("none" if code is None else str(code)): n for code, n in codes}
    failed = sum(n for code, n in codes if code is None or not 200 <= code < 300)
    return {"events": events,
            "attempts": {"total": sum(by_code.values()), "failed": failed, "by_code": by_code,
                         "errors": dict(errors)}}


def _rank(ordered: Sequence[int], q: float) -> int:
    """The nearest-rank q-quantile of a sorted, non-empty sequence."""
    return ordered[max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.999999) - 1))]


# ---------------------------------------------------------------- the receiver's sample


def verify_sample(kept: Sequence[Mapping[str, Any]], secrets: Mapping[int, str]
                  ) -> dict[str, Any]:
    """Each kept request's signature checked by the reference implementation (PyPI
    standardwebhooks: its sign(), compared with every signature sent) against its
    customer's secret (from the path /c/<customer>), its timestamp within the
    verifier's tolerance of its arrival, and its payload an event of one message:
    {"checked", "passed", "failures": the first five reasons}."""
    try:
        from standardwebhooks.webhooks import Webhook
    except ImportError:
        return {"checked": 0, "passed": 0, "failures": ["standardwebhooks is not installed"]}
    passed, failures = 0, list[str]()
    for request in kept:
        why = _unverified(request, secrets, Webhook)
        if why is None:
            passed += 1
        elif len(failures) < 5:
            failures.append(why)
    return {"checked": len(kept), "passed": passed, "failures": failures}


def _unverified(request: Mapping[str, Any], secrets: Mapping[int, str], webhook: Any
                ) -> str | None:
    path = str(request.get("path", ""))
    headers = request.get("headers") or {}
    try:
        customer = int(path.rsplit("/", 1)[1])
        secret = secrets[customer]
        stamp = int(headers["webhook-timestamp"])
    except (IndexError, KeyError, ValueError):
        return f"{path}: no secret or timestamp for it"
    body = str(request.get("body", ""))
    signed = webhook(secret).sign(headers.get("webhook-id", ""),
                                  datetime.fromtimestamp(stamp, UTC), body)
    if signed not in str(headers.get("webhook-signature", "")).split(" "):
        return f"{path}: no signature matches its secret"
    if abs(float(request.get("at", stamp)) - stamp) > TIMESTAMP_TOLERANCE_S:
        return f"{path}: timestamp {stamp} outside the tolerance of its arrival"
    try:
        payload = json.loads(body)
    except ValueError:
        return f"{path}: the body is not JSON"
    if not str(payload.get("type", "")).startswith("message.") \
            or not (payload.get("data") or {}).get("message_id"):
        return f"{path}: not a message event: {body[:80]}"
    return None

