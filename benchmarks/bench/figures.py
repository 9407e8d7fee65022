"""Figures from the scenarios' records: rates, latencies and ratios, None where not measured.

A scenario's record (what run.py keeps under "scenarios" in the results JSON):

    {"status": "ok" | "failed", "error": str | None,
     "loadtest": <`smsgw loadtest --json` document>,      # the load scenarios
     "result": <reference_limit.py --json document>,      # the reference scenario
     "cpu": {"elapsed_s", "machine_busy_cores", "cores": {group: cores}},
     ... scenario-specific facts (express: "backlog_recipients", "normal_unfinished_at_end";
     receipts_off and receipts_on: "delivery" and "receipts" read from the tables;
     smpp_http and smpp_smpp: "delivery" read from the tables, "operators" the
     simulators' /stats, and for SMPP "smscs" their counts added up and
     "gateway_smpp" the workers' smsgw_smpp_* metrics; webhooks_off and webhooks_on:
     "delivery" read from the tables, and for the on half "webhooks" (benchmarks/bench/
     webhooks.py: "events" and "attempts" from the tables, "metrics" the webhooks
     process's, "receiver" its counts, "verified" its sample checked))}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Scenarios = Mapping[str, Mapping[str, Any]]
Figures = dict[str, float | None]

OPEN_LOOP_RPS = 1000  # the rate of the accept latency target
EXPRESS_BACKLOG = 100_000  # normal recipients the express target is measured behind
E2E_SECONDS = 60
# The CPU of the gateway and its servers (not the load generator, the operator
# simulators or the rest of the box): what the receipts' cost is taken over.
GATEWAY_GROUPS = ("api", "relay", "worker", "mariadb", "rabbitmq")
# With status webhooks on, the gateway's groups and the `smsgw webhooks` process.
WEBHOOK_GROUPS = (*GATEWAY_GROUPS, "webhooks")


# ---------------------------------------------------------------- reading documents


def loadtest(scenarios: Scenarios, name: str) -> Mapping[str, Any] | None:
    """The loadtest document of a scenario that ran, else None."""
    record = scenarios.get(name)
    if not record or record.get("status") != "ok":
        return None
    doc = record.get("loadtest")
    return doc if isinstance(doc, Mapping) else None


def failed_requests(doc: Mapping[str, Any]) -> int:
    counts = [*(doc.get("non_2xx") or {}).values(), *(doc.get("errors") or {}).values()]
    return sum(int(n) for n in counts)


def ok_per_s(doc: Mapping[str, Any]) -> float | None:
    """Accepted (2xx) requests per second of the load phase."""
    elapsed = doc.get("elapsed_s") or 0
    return doc.get("ok", 0) / elapsed if elapsed > 0 else None


def recipients_per_s(doc: Mapping[str, Any]) -> float | None:
    rate = ok_per_s(doc)
    recipients = (doc.get("config") or {}).get("recipients")
    if rate is not None and isinstance(recipients, int):
        return rate * recipients
    value = doc.get("recipients_per_s")
    return float(value) if isinstance(value, int | float) else None


def latency_of(doc: Mapping[str, Any] | None, key: str) -> float | None:
    if doc is None:
        return None
    value = (doc.get("latency_ms") or {}).get(key)
    return float(value) if isinstance(value, int | float) else None


def delivery_of(doc: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if doc is None:
        return None
    delivery = doc.get("delivery")
    return delivery if isinstance(delivery, Mapping) else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# ---------------------------------------------------------------- figures


def derive_figures(scenarios: Scenarios) -> Figures:
    """Every figure the targets and the table need; None where its scenario did not run."""
    figures: Figures = {}
    # The reference limit is the better of the one-request transaction and the
    # grouped one: the API commits the grouped one under load.
    for name in ("reference", "reference_grouped"):
        record = scenarios.get(name) or {}
        best = (record.get("result") or {}).get("best") if record.get("status") == "ok" else None
        figures[f"{name}_tx_per_s"] = float(best["tx_per_s"]) if best else None
    measured = [v for v in (figures["reference_tx_per_s"],
                            figures["reference_grouped_tx_per_s"]) if v is not None]
    figures["reference_limit_tx_per_s"] = max(measured) if measured else None

    spread = loadtest(scenarios, "accept_spread")
    figures["accept_spread_rps"] = ok_per_s(spread) if spread else None
    figures["accept_spread_p99_ms"] = latency_of(spread, "p99")
    figures["accept_vs_reference"] = ratio(figures["accept_spread_rps"],
                                            figures["reference_limit_tx_per_s"])

    hot = loadtest(scenarios, "accept_hot")
    figures["accept_hot_rps"] = ok_per_s(hot) if hot else None
    figures["hot_vs_spread"] = ratio(figures["accept_hot_rps"], figures["accept_spread_rps"])

    hundred = loadtest(scenarios, "accept_100")
    figures["accept_100_recipients_per_s"] = recipients_per_s(hundred) if hundred else None

    open_loop = loadtest(scenarios, "accept_1000rps")
    figures["accept_1000_achieved_rps"] = ok_per_s(open_loop) if open_loop else None
    figures["accept_p99_at_1000_ms"] = latency_of(open_loop, "p99")

    e2e = loadtest(scenarios, "end_to_end")
    delivered = delivery_of(e2e)
    figures["e2e_accepted_rps"] = ok_per_s(e2e) if e2e else None
    figures["e2e_delivered_per_s"] = (
        float(delivered["delivered_per_s"]) if delivered and "delivered_per_s" in delivered
        else None
    )
    figures["e2e_vs_reference"] = ratio(figures["e2e_delivered_per_s"],
                                         figures["reference_tx_per_s"])
    figures["e2e_cpu_ms_per_sms"] = gateway_cpu_ms(
        (scenarios.get("end_to_end") or {}).get("cpu"), figures["e2e_accepted_rps"],
        figures["e2e_delivered_per_s"])

    express_record = scenarios.get("express") or {}
    express = delivery_of(loadtest(scenarios, "express"))
    latency = ((express or {}).get("latency_ms") or {}).get("express") or {}
    figures["express_p50_ms"] = number(latency.get("p50"))
    figures["express_p99_ms"] = number(latency.get("p99"))
    figures["express_max_ms"] = number(latency.get("max"))
    figures["express_backlog_recipients"] = number(express_record.get("backlog_recipients"))
    figures.update(fairness_figures(scenarios))
    figures.update(receipts_figures(scenarios))
    figures.update(smpp_figures(scenarios))
    figures.update(webhooks_figures(scenarios))
    return figures


def ran(scenarios: Scenarios, name: str) -> Mapping[str, Any] | None:
    record = scenarios.get(name)
    return record if record and record.get("status") == "ok" else None


def receipts_figures(scenarios: Scenarios) -> Figures:
    """End to end with the simulators' receipts off and on (same load, same run): the
    delivered rates and their ratio, receipts applied per second (from the first applied
    to the last), and their CPU next to the send path's."""
    off, on = ran(scenarios, "receipts_off"), ran(scenarios, "receipts_on")
    off_rate = number(((off or {}).get("delivery") or {}).get("delivered_per_s"))
    on_rate = number(((on or {}).get("delivery") or {}).get("delivered_per_s"))
    receipts = ((on or {}).get("receipts") or {}) if on else {}
    after = number(receipts.get("last_after_delivery_s"))
    figures: Figures = {
        "receipts_off_delivered_per_s": off_rate,
        "receipts_on_delivered_per_s": on_rate,
        "receipts_on_vs_off": ratio(on_rate, off_rate),
        "receipts_applied": number(receipts.get("applied")),
        "receipts_applied_per_s": number(receipts.get("applied_per_s")),
        "receipts_last_after_delivery_ms": after * 1000 if after is not None else None,
        "receipts_done_to_receipt_ms": done_to_receipt_ms(receipts.get("gateway")),
    }
    send = send_cpu_ms(off) if off else None
    figures["receipts_send_cpu_ms_per_sms"] = sum(send.values()) if send else None
    extra = receipt_cpu_ms(off, on) if off and on else None
    figures["receipts_cpu_ms_per_receipt"] = sum(extra.values()) if extra else None
    figures["receipts_api_cpu_ms_per_receipt"] = extra["api"] if extra else None
    figures["receipts_worker_cpu_ms_per_receipt"] = (
        extra["worker"] + extra["relay"] if extra else None)
    figures["receipts_mariadb_cpu_ms_per_receipt"] = extra["mariadb"] if extra else None
    return figures


def smpp_figures(scenarios: Scenarios) -> Figures:
    """End to end over HTTP operators and over SMPP ones (same load, same run): the
    delivered rates and their ratio, and the CPU per delivered SMS of each (the
    gateway's processes, MariaDB and RabbitMQ: send_cpu_ms) and theirs."""
    http, smpp = ran(scenarios, "smpp_http"), ran(scenarios, "smpp_smpp")
    http_rate = number(((http or {}).get("delivery") or {}).get("delivered_per_s"))
    smpp_rate = number(((smpp or {}).get("delivery") or {}).get("delivered_per_s"))
    http_cpu = send_cpu_ms(http) if http else None
    smpp_cpu = send_cpu_ms(smpp) if smpp else None
    http_total = sum(http_cpu.values()) if http_cpu else None
    smpp_total = sum(smpp_cpu.values()) if smpp_cpu else None
    return {
        "smpp_http_delivered_per_s": http_rate,
        "smpp_delivered_per_s": smpp_rate,
        "smpp_vs_http_delivered": ratio(smpp_rate, http_rate),
        "smpp_http_cpu_ms_per_sms": http_total,
        "smpp_cpu_ms_per_sms": smpp_total,
        "smpp_vs_http_cpu": ratio(smpp_total, http_total),
        "smpp_http_worker_cpu_ms_per_sms": http_cpu["worker"] if http_cpu else None,
        "smpp_worker_cpu_ms_per_sms": smpp_cpu["worker"] if smpp_cpu else None,
    }


def webhooks_figures(scenarios: Scenarios) -> Figures:
    """End to end without webhook endpoints and with one for every customer (same load,
    same run): the delivered rates and their ratio, events delivered per second (from
    the first written to the last delivered), the webhooks process's CPU per event,
    the extra CPU per event over every gateway process, the CPU per delivered SMS of
    each half, the events' wait, and the attempts that failed."""
    off, on = ran(scenarios, "webhooks_off"), ran(scenarios, "webhooks_on")
    off_rate = number(((off or {}).get("delivery") or {}).get("delivered_per_s"))
    on_rate = number(((on or {}).get("delivery") or {}).get("delivered_per_s"))
    hooks = ((on or {}).get("webhooks") or {}) if on else {}
    events = hooks.get("events") or {}
    delivered = number(events.get("delivered"))
    latency = events.get("latency_ms") or {}
    after = number(events.get("last_after_delivery_s"))
    seconds = cpu_seconds(on) if on else {}
    figures: Figures = {
        "webhooks_off_delivered_per_s": off_rate,
        "webhooks_on_delivered_per_s": on_rate,
        "webhooks_on_vs_off": ratio(on_rate, off_rate),
        "webhooks_events_delivered": delivered,
        "webhooks_events_per_s": number(events.get("delivered_per_s")),
        "webhooks_on_notified_per_s": number(events.get("notified_per_s")),
        "webhooks_notified_vs_off": ratio(number(events.get("notified_per_s")), off_rate),
        "webhooks_event_p50_ms": number(latency.get("p50")),
        "webhooks_event_p99_ms": number(latency.get("p99")),
        "webhooks_last_after_delivery_ms": after * 1000 if after is not None else None,
        "webhooks_failed_attempts": number((hooks.get("attempts") or {}).get("failed")),
        "webhooks_cpu_ms_per_event": (seconds["webhooks"] / delivered * 1000
                                      if delivered and "webhooks" in seconds else None),
        "webhooks_receiver_cpu_ms_per_event": (seconds["receiver"] / delivered * 1000
                                               if delivered and "receiver" in seconds
                                               else None),
    }
    sql = hooks.get("metrics") or {}
    figures["webhooks_statements_per_event"] = (
        float(sql["db_count"]) / delivered if delivered and "db_count" in sql else None)
    figures["webhooks_db_ms_per_event"] = (
        float(sql["db_sum"]) / delivered * 1000 if delivered and "db_sum" in sql else None)
    off_cpu = send_cpu_ms(off) if off else None
    on_cpu = send_cpu_ms(on, WEBHOOK_GROUPS) if on else None
    figures["webhooks_off_cpu_ms_per_sms"] = sum(off_cpu.values()) if off_cpu else None
    figures["webhooks_on_cpu_ms_per_sms"] = sum(on_cpu.values()) if on_cpu else None
    extra = webhook_cpu_ms(off, on) if off and on else None
    figures["webhooks_extra_cpu_ms_per_event"] = sum(extra.values()) if extra else None
    return figures


def cpu_seconds(record: Mapping[str, Any]) -> dict[str, float]:
    """CPU seconds by process group over a record's CPU sample."""
    cpu = record.get("cpu") or {}
    seconds = cpu.get("seconds")
    if isinstance(seconds, Mapping):
        return {g: float(v) for g, v in seconds.items()}
    elapsed = float(cpu.get("elapsed_s") or 0.0)
    return {g: float(c) * elapsed for g, c in (cpu.get("cores") or {}).items()}


def _counts(record: Mapping[str, Any]) -> tuple[float, float]:
    """(requests accepted, recipients terminal) of a receipts or smpp half."""
    doc = record.get("loadtest") or {}
    delivery = record.get("delivery") or {}
    accepted = float(doc.get("ok") or 0) * float((doc.get("config") or {}).get("recipients") or 1)
    return accepted, float(delivery.get("delivered", 0)) + float(delivery.get("failed", 0))


def send_cpu_ms(record: Mapping[str, Any], groups: tuple[str, ...] = GATEWAY_GROUPS
                ) -> dict[str, float] | None:
    """The send path's CPU by group, in ms: the API's per accepted request (as
    e2e_cpu_ms_per_sms), the others' per delivered SMS; the gateway's groups only
    (and the webhooks process, when `groups` says so)."""
    seconds = cpu_seconds(record)
    accepted, delivered = _counts(record)
    if not seconds or not accepted or not delivered:
        return None
    return {g: seconds.get(g, 0.0) / (accepted if g == "api" else delivered) * 1000
            for g in groups}


def receipt_cpu_ms(off: Mapping[str, Any], on: Mapping[str, Any]) -> dict[str, float] | None:
    """Each gateway group's extra CPU with receipts on, per receipt applied, in ms: the
    on half's CPU less what its requests and recipients cost at the off half's rate
    (the halves carry the same load; this keeps a half that got fewer through fair)."""
    applied = number((on.get("receipts") or {}).get("applied"))
    off_s, on_s = cpu_seconds(off), cpu_seconds(on)
    (off_accepted, off_delivered), (on_accepted, on_delivered) = _counts(off), _counts(on)
    if not applied or not off_s or not on_s or not off_accepted or not off_delivered:
        return None
    scale = {"api": on_accepted / off_accepted}
    return {g: (on_s.get(g, 0.0) - off_s.get(g, 0.0) * scale.get(g, on_delivered / off_delivered))
            / applied * 1000 for g in GATEWAY_GROUPS}


def webhook_cpu_ms(off: Mapping[str, Any], on: Mapping[str, Any]) -> dict[str, float] | None:
    """Each gateway group's extra CPU with webhooks on (the webhooks process's whole),
    per event delivered, in ms: the on half's CPU less what its requests and recipients
    cost at the off half's rate, as receipt_cpu_ms."""
    delivered = number(((on.get("webhooks") or {}).get("events") or {}).get("delivered"))
    off_s, on_s = cpu_seconds(off), cpu_seconds(on)
    (off_accepted, off_delivered), (on_accepted, on_delivered) = _counts(off), _counts(on)
    if not delivered or not off_s or not on_s or not off_accepted or not off_delivered:
        return None
    scale = {"api": on_accepted / off_accepted}
    return {g: (on_s.get(g, 0.0) - off_s.get(g, 0.0) * scale.get(g, on_delivered / off_delivered))
            / delivered * 1000 for g in WEBHOOK_GROUPS}


def done_to_receipt_ms(gateway: Any) -> float | None:
    """The mean time from a recipient's DONE to its receipt applied, from every
    process's smsgw_done_to_receipt_seconds."""
    if not isinstance(gateway, Mapping):
        return None
    parts = [m for m in gateway.values() if isinstance(m, Mapping) and "error" not in m]
    total = sum(float(m.get("done_to_receipt_sum", 0.0)) for m in parts)
    count = sum(float(m.get("done_to_receipt_count", 0.0)) for m in parts)
    return total / count * 1000 if count else None


def fairness_figures(scenarios: Scenarios) -> Figures:
    """Light customers behind a heavy one's backlog, and express on top: their waits,
    and the share of what the light ones left that the heavy one still got."""
    record = scenarios.get("fairness") or {}
    ran = record.get("status") == "ok"
    light = delivery_of(loadtest(scenarios, "fairness"))
    express = delivery_of(record.get("express") if ran else None)
    normal_ms = ((light or {}).get("latency_ms") or {}).get("normal") or {}
    express_ms = ((express or {}).get("latency_ms") or {}).get("express") or {}
    figures: Figures = {
        "fairness_light_p99_ms": number(normal_ms.get("p99")),
        "fairness_light_max_ms": number(normal_ms.get("max")),
        "fairness_express_p99_ms": number(express_ms.get("p99")),
        "fairness_express_max_ms": number(express_ms.get("max")),
        "fairness_operator_latency_ms": number(record.get("operator_latency_ms")) if ran else None,
    }
    before, during = number(record.get("heavy_before_per_s")), number(
        record.get("heavy_during_per_s"))
    after = number(record.get("heavy_after_per_s"))
    if before is not None and after is not None:
        before = (before + after) / 2  # alone before and after, windows of one length
    light_doc = loadtest(scenarios, "fairness")
    light_rate = recipients_per_s(light_doc) if light_doc else None
    # What the light customers left of the capacity the heavy one had alone.
    left = before - light_rate if before is not None and light_rate is not None else None
    figures["fairness_heavy_share"] = ratio(during, left) if left and left > 0 else None
    figures["fairness_heavy_alone_per_s"] = before if ran else None
    return figures


def cpu_ms_per_unit(cores: Mapping[str, float], rate: float,
                    accepted: float | None = None) -> dict[str, float]:
    """Each process group's CPU per unit of work, in ms: per `rate`, except the API's
    and the load generator's per `accepted` request when given (end to end, an
    overloaded pipeline accepts more than it delivers)."""
    return {g: c / (accepted if accepted and g in ("api", "loadtest") else rate) * 1000
            for g, c in cores.items()}


def gateway_cpu_ms(cpu: Mapping[str, Any] | None, accepted: float | None,
                   delivered: float | None) -> float | None:
    """CPU per delivered SMS of every process but the load generator, in ms (the
    API's per accepted request)."""
    cores = (cpu or {}).get("cores") or {}
    if not cores or not accepted or not delivered:
        return None
    return sum(ms for g, ms in cpu_ms_per_unit(cores, delivered, accepted).items()
               if g != "loadtest")


def number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
