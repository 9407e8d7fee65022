"""The targets of `make bench`: met or not, the caveats of each figure, what bounds a miss."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchmarks.bench.figures import (
    E2E_SECONDS,
    EXPRESS_BACKLOG,
    OPEN_LOOP_RPS,
    Figures,
    Scenarios,
    cpu_ms_per_unit,
    delivery_of,
    failed_requests,
    loadtest,
    receipt_cpu_ms,
    send_cpu_ms,
    webhook_cpu_ms,
)

FAILURE_SHARE_LIMIT = 0.01  # more failed requests than this and a latency figure does not count
# Webhook events delivered at less than this share of the SMS delivered rate: their
# process fell behind, its work was left for after the SMS, and the ratio says nothing.
KEPT_UP = 0.9


@dataclass(frozen=True, slots=True)
class Target:
    figure: str  # key in the figures
    label: str
    op: str  # ">=" or "<="
    threshold: float
    unit: str

    def met_by(self, value: float) -> bool:
        return value >= self.threshold if self.op == ">=" else value <= self.threshold


TARGETS: tuple[Target, ...] = (
    Target("accept_spread_rps", "accept, 1 recipient, spread over 5,000 customers",
           ">=", 3000, "req/s"),
    Target("accept_vs_reference", "accept ÷ reference limit (same run)", ">=", 0.45, "ratio"),
    Target("accept_p99_at_1000_ms", "accept p99 at 1,000 req/s (open loop)", "<=", 25, "ms"),
    Target("hot_vs_spread", "hot customer (90 % of requests) ÷ spread", ">=", 0.8, "ratio"),
    Target("accept_100_recipients_per_s", "accept, 100 recipients per request",
           ">=", 20_000, "recipients/s"),
    Target("e2e_vs_reference", "end to end, sustained 60 s: delivered ÷ one-request reference "
           "(same run)", ">=", 0.5, "ratio"),
    Target("e2e_cpu_ms_per_sms", "end to end: CPU per delivered SMS, all processes but the "
           "load generator", "<=", 1.0, "ms"),
    Target("express_p99_ms", "express p99 accept→terminal behind 100,000 normal, normal sends "
           "arriving", "<=", 100, "ms"),
    Target("express_max_ms", "express slowest accept→terminal, the same run", "<=", 500, "ms"),
    # With operators of 200 ms: twice their latency and a second.
    Target("fairness_light_p99_ms", "light customers' p99 accept→terminal behind a heavy "
           "customer's 20,000-recipient backlog", "<=", 1400, "ms"),
    Target("fairness_heavy_share", "the heavy customer's share of what the light ones left",
           ">=", 0.9, "ratio"),
    # Issue 25: receipt ingestion keeps up with delivery at the end-to-end rate.
    Target("receipts_on_vs_off", "end to end with receipts (85 % delivered, 8 % undelivered, "
           "2 % expired, 5 % none) ÷ without (same load, same run): delivered", ">=", 0.85,
           "ratio"),
    # Issue 26: the SMPP path no more than 10 % costlier per SMS than the HTTP one.
    Target("smpp_vs_http_cpu", "end to end over SMPP (2 simulated SMSCs, windows of 10) ÷ "
           "over HTTP (same load, same run): CPU per delivered SMS", "<=", 1.10, "ratio"),
    # Issue 27: status webhooks for every recipient cost end to end at most 20 %.
    Target("webhooks_on_vs_off", "end to end with a status webhook for every recipient "
           "(every customer's endpoint, every event type, delivered to a local receiver) ÷ "
           "without (same load, same run): delivered", ">=", 0.8, "ratio"),
)

# Figures shown without a target, for context.
CONTEXT: tuple[tuple[str, str, str], ...] = (
    ("reference_limit_tx_per_s", "reference limit: the better of the two below", "req/s"),
    ("reference_tx_per_s", "reference, one request per transaction (best concurrency)", "req/s"),
    ("reference_grouped_tx_per_s", "reference, 32 requests per transaction (best concurrency)",
     "req/s"),
    ("accept_spread_p99_ms", "accept p99, closed loop at max throughput", "ms"),
    ("accept_hot_rps", "accept, 1 recipient, 90 % from one customer", "req/s"),
    ("accept_1000_achieved_rps", "open-loop rate achieved (asked 1,000)", "req/s"),
    ("e2e_delivered_per_s", "end to end: delivered", "delivered/s"),
    ("e2e_accepted_rps", "end to end: accepted", "req/s"),
    ("express_p50_ms", "express p50 accept→terminal behind the backlog", "ms"),
    ("express_backlog_recipients", "normal recipients queued before express", "recipients"),
    ("fairness_light_max_ms", "light customers' slowest accept→terminal (fairness)", "ms"),
    ("fairness_express_p99_ms", "express p99 accept→terminal on top of it (fairness)", "ms"),
    ("fairness_express_max_ms", "express slowest accept→terminal (fairness)", "ms"),
    ("fairness_heavy_alone_per_s", "the heavy customer alone: delivered (fairness)",
     "recipients/s"),
    ("fairness_operator_latency_ms", "each operator's latency (fairness)", "ms"),
    ("receipts_off_delivered_per_s", "end to end, receipts off: delivered", "delivered/s"),
    ("receipts_on_delivered_per_s", "end to end, receipts on: delivered", "delivered/s"),
    ("receipts_applied_per_s", "receipts applied, from the first applied to the last",
     "receipts/s"),
    ("receipts_applied", "receipts applied (all the simulators reported)", "receipts"),
    ("receipts_done_to_receipt_ms", "a recipient's DONE to its receipt applied, mean "
     "(the simulators report 200 ms after the send)", "ms"),
    ("receipts_last_after_delivery_ms", "the last receipt applied after the last delivery",
     "ms"),
    ("receipts_send_cpu_ms_per_sms", "receipts off: CPU per delivered SMS, the gateway's "
     "processes, MariaDB and RabbitMQ", "CPU ms"),
    ("receipts_cpu_ms_per_receipt", "receipts on: their extra CPU per receipt applied, the "
     "same processes", "CPU ms"),
    ("receipts_api_cpu_ms_per_receipt", "of which the api processes' (the receipts route)",
     "CPU ms"),
    ("receipts_worker_cpu_ms_per_receipt", "of which the workers' and the relay's "
     "(kept receipts applied with the answer)", "CPU ms"),
    ("receipts_mariadb_cpu_ms_per_receipt", "of which MariaDB's", "CPU ms"),
    ("smpp_http_delivered_per_s", "end to end over HTTP operators (smpp scenario): delivered",
     "delivered/s"),
    ("smpp_delivered_per_s", "end to end over SMPP operators: delivered", "delivered/s"),
    ("smpp_vs_http_delivered", "over SMPP ÷ over HTTP: delivered", "ratio"),
    ("smpp_http_cpu_ms_per_sms", "over HTTP: CPU per delivered SMS, the gateway's processes, "
     "MariaDB and RabbitMQ", "CPU ms"),
    ("smpp_cpu_ms_per_sms", "over SMPP: CPU per delivered SMS, the same processes", "CPU ms"),
    ("smpp_http_worker_cpu_ms_per_sms", "of which the workers', over HTTP", "CPU ms"),
    ("smpp_worker_cpu_ms_per_sms", "of which the workers', over SMPP", "CPU ms"),
    ("webhooks_off_delivered_per_s", "end to end, webhooks off: delivered", "delivered/s"),
    ("webhooks_on_delivered_per_s", "end to end, webhooks on: delivered", "delivered/s"),
    ("webhooks_events_per_s", "webhook events delivered, from the first written to the last "
     "delivered", "events/s"),
    ("webhooks_on_notified_per_s", "webhooks on: recipients delivered and their event "
     "delivered, from the first accepted to the last event", "delivered/s"),
    ("webhooks_notified_vs_off", "the same ÷ delivered with webhooks off: the ratio when a "
     "recipient counts once its customer is told", "ratio"),
    ("webhooks_events_delivered", "webhook events delivered (one per recipient: "
     "message.sent or message.failed)", "events"),
    ("webhooks_cpu_ms_per_event", "the smsgw webhooks process's CPU per event delivered",
     "CPU ms"),
    ("webhooks_statements_per_event", "the webhooks process's SQL statements per event "
     "delivered", "statements"),
    ("webhooks_db_ms_per_event", "the webhooks process's SQL round trips per event delivered, "
     "their time (smsgw_db_statement_duration_seconds)", "ms"),
    ("webhooks_extra_cpu_ms_per_event", "webhooks on: their extra CPU per event delivered, "
     "the gateway's processes (webhooks included), MariaDB and RabbitMQ", "CPU ms"),
    ("webhooks_off_cpu_ms_per_sms", "webhooks off: CPU per delivered SMS, the gateway's "
     "processes, MariaDB and RabbitMQ", "CPU ms"),
    ("webhooks_on_cpu_ms_per_sms", "webhooks on: CPU per delivered SMS, the same and the "
     "webhooks process", "CPU ms"),
    ("webhooks_event_p50_ms", "a webhook event written to the attempt that delivered it, p50",
     "ms"),
    ("webhooks_event_p99_ms", "a webhook event written to the attempt that delivered it, p99",
     "ms"),
    ("webhooks_last_after_delivery_ms", "the last event delivered after the last SMS "
     "delivered", "ms"),
    ("webhooks_failed_attempts", "webhook attempts that failed (no 2xx)", "attempts"),
    ("webhooks_receiver_cpu_ms_per_event", "the receiver's CPU per event (not the gateway's; "
     "benchmarks/bench/webhook_sink.py)", "CPU ms"),
)


def evaluate(figures: Figures, scenarios: Scenarios, cpus: int = 2) -> list[dict[str, Any]]:
    """One row per target: measured, met (None: not measured), caveats, and what bounds it."""
    rows = []
    for target in TARGETS:
        value = figures.get(target.figure)
        notes = _caveats(target, figures, scenarios)
        met: bool | None = None
        if value is not None:
            met = target.met_by(value) and not any(n.startswith("invalid:") for n in notes)
        rows.append({
            "figure": target.figure, "label": target.label, "measured": value,
            "op": target.op, "target": target.threshold, "unit": target.unit,
            "met": met, "notes": notes,
            "bound": bound(target, figures, scenarios, cpus) if met is False else None,
        })
    return rows


_SCENARIO_OF = {
    "accept_spread_rps": "accept_spread", "accept_vs_reference": "accept_spread",
    "accept_p99_at_1000_ms": "accept_1000rps", "hot_vs_spread": "accept_hot",
    "accept_100_recipients_per_s": "accept_100", "e2e_delivered_per_s": "end_to_end",
    "e2e_vs_reference": "end_to_end", "e2e_cpu_ms_per_sms": "end_to_end",
    "express_p99_ms": "express", "express_max_ms": "express",
    "fairness_light_p99_ms": "fairness",
    "fairness_heavy_share": "fairness",
    "receipts_on_vs_off": "receipts_on",
    "smpp_vs_http_cpu": "smpp_smpp",
    "webhooks_on_vs_off": "webhooks_on",
}


def _caveats(target: Target, figures: Figures, scenarios: Scenarios) -> list[str]:
    """Why a figure may not say what its target asks. "invalid:" ones make it not met."""
    notes: list[str] = []
    name = _SCENARIO_OF[target.figure]
    record = scenarios.get(name) or {}
    if record.get("status") == "failed":
        notes.append(f"scenario {name} failed: {record.get('error')}")
    doc = loadtest(scenarios, name)
    notes += _failed_requests(doc)
    if target.figure == "accept_p99_at_1000_ms":
        achieved = figures.get("accept_1000_achieved_rps")
        if achieved is not None and achieved < 0.95 * OPEN_LOOP_RPS:
            notes.append(f"invalid: the open loop reached only {achieved:,.0f} req/s")
    if target.figure in ("e2e_vs_reference", "e2e_cpu_ms_per_sms") and doc is not None:
        seconds = (doc.get("config") or {}).get("duration")
        if isinstance(seconds, int | float) and seconds < E2E_SECONDS:
            notes.append(f"ran {seconds:g} s, not {E2E_SECONDS} s")
        delivery = delivery_of(doc) or {}
        for key in ("failed", "unfinished"):
            if delivery.get(key):
                notes.append(f"{delivery[key]} recipients {key}")
    if target.figure in ("express_p99_ms", "express_max_ms"):
        backlog = figures.get("express_backlog_recipients")
        if backlog is not None and backlog < EXPRESS_BACKLOG:
            notes.append(f"behind {backlog:,.0f} normal recipients, not {EXPRESS_BACKLOG:,}")
        left = record.get("normal_unfinished_at_end")
        if left == 0:
            notes.append("invalid: the normal backlog had drained before the express run ended")
        elif isinstance(left, int):
            notes.append(f"{left:,} normal recipients still queued when it ended")
        delivery = delivery_of(doc) or {}
        if delivery.get("unfinished"):
            notes.append(f"{delivery['unfinished']} express recipients unfinished")
    if target.figure == "receipts_on_vs_off":
        notes += _receipts_caveats(scenarios)
    if target.figure == "smpp_vs_http_cpu":
        notes += _smpp_caveats(scenarios)
    if target.figure == "webhooks_on_vs_off":
        notes += _webhooks_caveats(scenarios)
    if name == "fairness" and record.get("status") == "ok":
        if record.get("heavy_unfinished_at_end") == 0:
            notes.append("invalid: the heavy backlog had drained before the light sends ended")
        latency = record.get("operator_latency_ms")
        if isinstance(latency, int | float) and latency != 200:
            notes.append(f"operators of {latency:g} ms, not 200 ms")
    return notes


def _failed_requests(doc: Mapping[str, Any] | None, prefix: str = "") -> list[str]:
    if doc is None:
        return []
    failed, sent = failed_requests(doc), doc.get("sent", 0)
    if not failed:
        return []
    share = failed / sent if sent else 1.0
    kinds = {**(doc.get("non_2xx") or {}), **(doc.get("errors") or {})}
    text = f"{prefix}{failed} of {sent} requests failed ({_kinds(kinds)})"
    return [f"invalid: {text}" if share > FAILURE_SHARE_LIMIT else text]


def _off_and_on_caveats(scenarios: Scenarios, name: str) -> tuple[list[str], dict[str, Any]]:
    """What two halves `<name>_off` and `<name>_on` share: the off half's own failures,
    the same load in both, every recipient terminal; and the on half's record."""
    notes: list[str] = []
    off = scenarios.get(f"{name}_off") or {}
    if off.get("status") == "failed":
        notes.append(f"scenario {name}_off failed: {off.get('error')}")
    notes += _failed_requests(loadtest(scenarios, f"{name}_off"), f"{name} off: ")
    on = scenarios.get(f"{name}_on") or {}
    halves = [(half, record) for half, record in (("off", off), ("on", on))
              if record.get("status") == "ok"]
    seconds = ((on.get("loadtest") or {}).get("config") or {}).get("duration")
    if isinstance(seconds, int | float) and seconds < E2E_SECONDS:
        notes.append(f"ran {seconds:g} s, not {E2E_SECONDS} s")
    for half, record in halves:
        delivery = record.get("delivery") or {}
        if delivery.get("unfinished"):
            notes.append(f"invalid: {name} {half}: {delivery['unfinished']} recipients "
                         "unfinished")
        if delivery.get("failed"):
            notes.append(f"{name} {half}: {delivery['failed']} recipients failed")
    if len(halves) == 2:
        accepted = [(r.get("loadtest") or {}).get("ok", 0) for _, r in halves]
        if min(accepted) < 0.95 * max(accepted):
            notes.append(f"accepted {accepted[0]:,} requests off, {accepted[1]:,} on: "
                         "the box could not take the same load in both")
    return notes, on


def _receipts_caveats(scenarios: Scenarios) -> list[str]:
    """The receipts halves: the off half's own failures, the same load in both, every
    recipient terminal, and every receipt the simulators had taken applied."""
    notes, on = _off_and_on_caveats(scenarios, "receipts")
    if on.get("status") == "ok":
        receipts = on.get("receipts") or {}
        owed = receipts.get("simulators") or {}
        applied, reported = receipts.get("applied", 0), owed.get("reported", 0)
        if owed.get("pending"):
            notes.append(f"invalid: {owed['pending']} receipts still owed by the simulators "
                         "when the bench stopped waiting")
        if applied < reported:
            notes.append(f"invalid: the simulators had {reported:,} receipts taken, "
                         f"{applied:,} recipients moved by one")
        counted = receipts.get("gateway_applied")
        if isinstance(counted, int) and counted != applied:
            notes.append(f"smsgw_receipts_total counts {counted:,} applied, the table "
                         f"{applied:,}")
        if owed.get("refused"):
            notes.append(f"{owed['refused']} receipts refused (400) by the gateway")
        if not applied:
            notes.append("invalid: no receipt applied")
    return notes


def _smpp_caveats(scenarios: Scenarios) -> list[str]:
    """The smpp halves: the HTTP half's own failures, the same load in both, every
    recipient terminal, and the SMPP half's sends taken by the SMSCs, without drops."""
    notes: list[str] = []
    http = scenarios.get("smpp_http") or {}
    if http.get("status") == "failed":
        notes.append(f"scenario smpp_http failed: {http.get('error')}")
    notes += _failed_requests(loadtest(scenarios, "smpp_http"), "over HTTP: ")
    smpp = scenarios.get("smpp_smpp") or {}
    halves = [(half, record) for half, record in (("HTTP", http), ("SMPP", smpp))
              if record.get("status") == "ok"]
    seconds = ((smpp.get("loadtest") or {}).get("config") or {}).get("duration")
    if isinstance(seconds, int | float) and seconds < E2E_SECONDS:
        notes.append(f"ran {seconds:g} s, not {E2E_SECONDS} s")
    for half, record in halves:
        delivery = record.get("delivery") or {}
        if delivery.get("unfinished"):
            notes.append(f"invalid: over {half}: {delivery['unfinished']} recipients "
                         "unfinished")
        if delivery.get("failed"):
            notes.append(f"over {half}: {delivery['failed']} recipients failed")
    if len(halves) == 2:
        accepted = [(r.get("loadtest") or {}).get("ok", 0) for _, r in halves]
        if min(accepted) < 0.95 * max(accepted):
            notes.append(f"accepted {accepted[0]:,} requests over HTTP, {accepted[1]:,} over "
                         "SMPP: the box could not take the same load in both")
    if smpp.get("status") == "ok":
        smscs = smpp.get("smscs") or {}
        delivered = int((smpp.get("delivery") or {}).get("delivered", 0))
        if smscs.get("unreadable"):
            notes.append(f"{smscs['unreadable']} SMSC(s) did not answer /stats")
        elif smscs.get("accepted", 0) < delivered:
            notes.append(f"invalid: the SMSCs took {smscs.get('accepted', 0):,} submit_sm, "
                         f"{delivered:,} recipients delivered")
        # Not their "duplicates": the same number and text twice in ten minutes, which the
        # load test's random numbers (one text, 10^8 numbers) give by chance, n²/2·10^8.
        for key, what in (("links_dropped", "links dropped"), ("throttled", "throttled"),
                          ("failed", "submit_sm failed")):
            if smscs.get(key):
                notes.append(f"SMSCs: {smscs[key]:,} {what}")
    return notes


def _webhooks_caveats(scenarios: Scenarios) -> list[str]:
    """The webhooks halves: the off half's own failures, the same load in both, every
    recipient terminal, an event written for each, every event delivered, and the
    receiver's sample verified."""
    notes, on = _off_and_on_caveats(scenarios, "webhooks")
    if on.get("status") != "ok":
        return notes
    hooks = on.get("webhooks") or {}
    events, attempts = hooks.get("events") or {}, hooks.get("attempts") or {}
    delivery = on.get("delivery") or {}
    moved = int(delivery.get("delivered", 0)) + int(delivery.get("failed", 0))
    written, delivered = int(events.get("written", 0)), int(events.get("delivered", 0))
    if written != moved:
        notes.append(f"invalid: {written:,} webhook events written for {moved:,} recipients "
                     "delivered or failed")
    if events.get("pending"):
        notes.append(f"invalid: {events['pending']:,} webhook events still pending when the "
                     "bench stopped waiting")
    if events.get("dead"):
        notes.append(f"invalid: {events['dead']:,} webhook events dead")
    if not delivered:
        notes.append("invalid: no webhook event delivered")
    rate, sms_rate = events.get("delivered_per_s"), delivery.get("delivered_per_s")
    if isinstance(rate, int | float) and isinstance(sms_rate, int | float) \
            and rate < KEPT_UP * sms_rate:
        after = events.get("last_after_delivery_s")
        notes.append(f"invalid: the webhooks process did not keep up ({rate:,.0f} events/s "
                     f"against {sms_rate:,.0f} SMS delivered/s, the last event "
                     f"{after if after is not None else '?'} s after the last SMS): its "
                     "backlog, not the SMS path, carried the cost; see the events' rate")
    if attempts.get("failed"):
        codes = {k: n for k, n in (attempts.get("by_code") or {}).items()
                 if not k.startswith("2")}
        notes.append(f"{attempts['failed']:,} webhook attempts failed ({_kinds(codes)})")
    receiver = hooks.get("receiver") or {}
    unique = receiver.get("unique")
    if isinstance(unique, int) and unique != delivered:
        notes.append(f"the receiver counted {unique:,} distinct events, the table "
                     f"{delivered:,} delivered")
    if receiver.get("duplicates"):
        notes.append(f"the receiver got {receiver['duplicates']:,} events twice")
    verified = hooks.get("verified") or {}
    if verified.get("passed", 0) < verified.get("checked", 0) or not verified.get("checked"):
        failures = "; ".join(verified.get("failures") or []) or "no request kept"
        notes.append(f"invalid: {verified.get('passed', 0)} of {verified.get('checked', 0)} "
                     f"sampled deliveries verified ({failures})")
    return notes


def _kinds(kinds: Mapping[str, int]) -> str:
    return ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))


def cpu_summary(record: Mapping[str, Any] | None, cpus: int) -> str | None:
    """"box 97 % busy: api 1.10, mariadb 0.52, ... cores" from a scenario's CPU sample."""
    cpu = (record or {}).get("cpu")
    if not cpu:
        return None
    cores = sorted(((g, c) for g, c in (cpu.get("cores") or {}).items() if c >= 0.01),
                   key=lambda gc: -gc[1])
    parts = ", ".join(f"{group} {value:.2f}" for group, value in cores)
    busy = cpu.get("machine_busy_cores", 0.0)
    return f"box {busy / cpus:.0%} busy of {cpus} cores ({parts} cores)"


_UNIT_OF = {  # (one, many)
    "accept_spread_rps": ("request", "requests"), "accept_vs_reference": ("request", "requests"),
    "accept_100_recipients_per_s": ("recipient", "recipients"),
    "e2e_delivered_per_s": ("delivered SMS", "delivered SMS"),
    "e2e_vs_reference": ("delivered SMS", "delivered SMS"),
    "e2e_cpu_ms_per_sms": ("delivered SMS", "delivered SMS"),
}
# The throughput a ratio or a cost is of (the figure itself for a throughput).
_RATE_OF = {
    "accept_vs_reference": "accept_spread_rps",
    "e2e_vs_reference": "e2e_delivered_per_s", "e2e_cpu_ms_per_sms": "e2e_delivered_per_s",
}


def cpu_budget(target: Target, figures: Figures, record: Mapping[str, Any] | None,
               cpus: int) -> str | None:
    """For a throughput: the CPU each unit of work took, per process group, and the
    most the machine's cores could carry at that cost — the measured bound."""
    unit, units = _UNIT_OF.get(target.figure, (None, None))
    rate = figures.get(_RATE_OF.get(target.figure, target.figure))
    cores = ((record or {}).get("cpu") or {}).get("cores") or {}
    if unit is None or not rate or not cores:
        return None
    accepted = figures.get("e2e_accepted_rps") if target.figure.startswith("e2e_") else None
    spent = sorted(((g, ms) for g, ms in cpu_ms_per_unit(cores, rate, accepted).items()
                    if cores[g] >= 0.01), key=lambda gc: -gc[1])
    total = sum(ms for _, ms in spent)
    if total <= 0:
        return None
    parts = ", ".join(f"{group} {ms:.2f}" for group, ms in spent)
    return (f"CPU per {unit}: {parts} ms, {total:.2f} ms in all; at that cost {cpus} cores "
            f"carry at most {cpus * 1000 / total:,.0f} {units}/s")


def receipts_budget(figures: Figures, scenarios: Scenarios) -> str:
    """What receipts cost over the send path, per group, and the cores that takes."""
    off, on = scenarios.get("receipts_off") or {}, scenarios.get("receipts_on") or {}
    extra = receipt_cpu_ms(off, on) if off.get("status") == on.get("status") == "ok" else None
    rate, send = figures.get("receipts_applied_per_s"), figures.get("receipts_send_cpu_ms_per_sms")
    if not extra:
        return "the CPU receipts took could not be told (a half without a CPU sample)"
    total = sum(extra.values())
    parts = ", ".join(f"{g} {ms:.2f}" for g, ms in sorted(extra.items(), key=lambda gm: -gm[1])
                      if abs(ms) >= 0.005)
    text = f"a receipt applied took {total:.2f} ms of CPU over the send path ({parts} ms)"
    if send:
        text += f", a delivered SMS {send:.2f} ms without receipts"
    if rate:
        text += f"; at {rate:,.0f} receipts/s that is {rate * total / 1000:.2f} cores"
    return text


def smpp_budget(scenarios: Scenarios) -> str:
    """Where an SMS over SMPP costs more than over HTTP, by process group."""
    http, smpp = scenarios.get("smpp_http") or {}, scenarios.get("smpp_smpp") or {}
    both = http.get("status") == smpp.get("status") == "ok"
    over_http = send_cpu_ms(http) if both else None
    over_smpp = send_cpu_ms(smpp) if both else None
    if not over_http or not over_smpp:
        return "the CPU of each half could not be told (a half without a CPU sample)"
    more = sorted(((g, over_smpp[g] - over_http[g]) for g in over_smpp),
                  key=lambda gm: -gm[1])
    parts = ", ".join(f"{g} {ms:+.2f}" for g, ms in more if abs(ms) >= 0.005)
    return (f"a delivered SMS took {sum(over_smpp.values()):.2f} ms of CPU over SMPP, "
            f"{sum(over_http.values()):.2f} ms over HTTP ({parts} ms)")


def webhooks_budget(figures: Figures, scenarios: Scenarios) -> str:
    """What webhooks cost over the send path, per group, and the cores that takes."""
    off, on = scenarios.get("webhooks_off") or {}, scenarios.get("webhooks_on") or {}
    extra = webhook_cpu_ms(off, on) if off.get("status") == on.get("status") == "ok" else None
    if not extra:
        return "the CPU webhooks took could not be told (a half without a CPU sample)"
    rate, send = figures.get("webhooks_events_per_s"), figures.get("webhooks_off_cpu_ms_per_sms")
    total = sum(extra.values())
    parts = ", ".join(f"{g} {ms:.2f}" for g, ms in sorted(extra.items(), key=lambda gm: -gm[1])
                      if abs(ms) >= 0.005)
    text = f"an event delivered took {total:.2f} ms of CPU over the send path ({parts} ms)"
    if send:
        text += f", a delivered SMS {send:.2f} ms without webhooks"
    if rate:
        text += f"; at {rate:,.0f} events/s that is {rate * total / 1000:.2f} cores"
    sql, cpu = figures.get("webhooks_db_ms_per_event"), figures.get("webhooks_cpu_ms_per_event")
    statements = figures.get("webhooks_statements_per_event")
    if sql and cpu and statements:
        text += (f"; per event the webhooks process waited {sql:.2f} ms on {statements:.1f} "
                 f"SQL statements and ran {cpu:.2f} ms of CPU (its loop waits for each "
                 "claim and each record; the attempts alone run side by side): at most "
                 f"{1000 / (sql + cpu):,.0f} events/s were they never overlapped")
    return text


def run_queue(record: Mapping[str, Any] | None) -> str | None:
    """"waiting for a core: mariadb 7.5, api 2.1 ... ms for every ms run" from a CPU sample:
    on a busy box each hop of a request's path (a round trip wakes a process) queues."""
    cpu = (record or {}).get("cpu") or {}
    cores, waiting = cpu.get("cores") or {}, cpu.get("waiting_cores") or {}
    ratios = sorted(((g, waiting[g] / cores[g]) for g in waiting
                     if cores.get(g, 0.0) >= 0.01), key=lambda gr: -gr[1])
    if not ratios:
        return None
    parts = ", ".join(f"{group} {r:.1f}" for group, r in ratios)
    return (f"waiting for a core: each process's threads waited on the run queue this many ms "
            f"for every ms they ran: {parts}")


_LATENCY_TARGETS = frozenset({"accept_p99_at_1000_ms", "express_p99_ms", "express_max_ms",
                              "fairness_light_p99_ms"})


def saturated(record: Mapping[str, Any] | None, cpus: int) -> bool:
    cpu = (record or {}).get("cpu") or {}
    return bool(cpu) and cpu.get("machine_busy_cores", 0.0) >= 0.9 * cpus


def bound(target: Target, figures: Figures, scenarios: Scenarios, cpus: int = 2) -> str:
    """What the measurements say held a figure back from its target."""
    name = _SCENARIO_OF[target.figure]
    record = scenarios.get(name)
    if record is None or record.get("status") != "ok":
        return "not measured"
    said: list[str] = []
    reference = figures.get("reference_limit_tx_per_s")
    if target.figure == "accept_spread_rps" and reference and reference < target.threshold:
        said.append(f"the framework-free reference itself reaches only {reference:,.0f} tx/s "
                    "on this box: MariaDB's commit path and the machine bound it before the API")
    if target.figure == "hot_vs_spread":
        said.append("90 % of the transactions update one balance row, and each holds its row "
                    "lock until its commit is flushed, so those serialize on it")
    if target.figure == "fairness_light_p99_ms":
        said.append("a light SMS waits for the relay's next claim (it goes first in the fair "
                    "order), the deliveries already in the normal queue (SMSGW_RELAY_AHEAD), "
                    "a free normal consumer (a heavy SMS of 100 recipients holds one until "
                    "its last recipient is sent) and one operator call")
    if target.figure in ("express_p99_ms", "express_max_ms"):
        said.append("accept→terminal is outbox wait (relay claim) + queue wait + the worker's "
                    "claim, operator call and record; the normal backlog shares the relay, "
                    "broker, worker process, operators and database with it")
    if target.figure == "receipts_on_vs_off":
        said.append(receipts_budget(figures, scenarios))
    if target.figure == "smpp_vs_http_cpu":
        said.append(smpp_budget(scenarios))
    if target.figure == "webhooks_on_vs_off":
        said.append(webhooks_budget(figures, scenarios))
    budget = cpu_budget(target, figures, record, cpus)
    if budget:
        said.append(budget)
    queued = run_queue(record) if target.figure in _LATENCY_TARGETS else None
    if queued:
        said.append(queued)
    summary = cpu_summary(record, cpus)
    if summary:
        if saturated(record, cpus):
            said.append(f"CPU-bound: {summary}")
        else:
            said.append(f"not CPU-bound ({summary}): the time goes to waiting — round trips, "
                        "commit flushes, polls")
    return "; ".join(said) or "see the scenario's CPU sample"
