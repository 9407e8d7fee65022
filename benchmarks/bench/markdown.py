"""The results of a bench run as a Markdown page readable on its own."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks.bench.figures import (
    GATEWAY_GROUPS,
    WEBHOOK_GROUPS,
    cpu_seconds,
    failed_requests,
    number,
    ok_per_s,
    receipt_cpu_ms,
    send_cpu_ms,
    webhook_cpu_ms,
)
from benchmarks.bench.targets import CONTEXT, cpu_summary

TIMES = "\N{MULTIPLICATION SIGN}"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ratio":
        return f"{value:.2f}{TIMES}"
    if unit == "ms":
        return f"{value:,.1f} ms"
    if unit == "CPU ms":  # CPU per unit of work: fractions of a millisecond
        return f"{value:,.2f} ms"
    if unit == "statements":  # per unit of work: a few, with their fraction
        return f"{value:,.1f} statements"
    return f"{value:,.0f} {unit}".rstrip()


def _met(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "not measured"}[met]


def markdown(results: Mapping[str, Any]) -> str:
    """The results as a page readable on its own."""
    machine = results.get("machine") or {}
    git = results.get("git") or {}
    rows: Sequence[Mapping[str, Any]] = results.get("targets") or []
    figures: Mapping[str, float | None] = results.get("figures") or {}
    scenarios: Mapping[str, Mapping[str, Any]] = results.get("scenarios") or {}
    cpus = int(machine.get("cpus") or 2)
    dirty = " with uncommitted changes" if git.get("dirty") else ""
    lines = [
        f"# smsgw benchmark, {results.get('date', '?')}",
        "",
        f"Produced by `{results.get('command', 'make bench')}` (benchmarks/run.py), "
        f"{results.get('started_at', '?')} to {results.get('finished_at', '?')}, on "
        f"{machine.get('cpu_model', '?')}, {machine.get('cpus', '?')} CPUs, Python "
        f"{machine.get('python', '?')}, MariaDB {machine.get('mariadb_version', '?')} "
        f"(innodb_flush_log_at_trx_commit={machine.get('innodb_flush_log_at_trx_commit', '?')}),"
        f" RabbitMQ {machine.get('rabbitmq_version', '?')}; commit "
        f"{str(git.get('commit', '?'))[:12]}{dirty}."
        " Everything runs on this one machine: the gateway's processes, the load generator, "
        "MariaDB and RabbitMQ.",
        "",
    ]
    if results.get("quick"):
        lines += ["**Quick run** (`--quick`): short durations and a small backlog, a smoke "
                  "check only; the figures are not comparable with the targets.", ""]
    lines += ["| figure | measured | target | met |", "|---|---|---|---|"]
    for row in rows:
        measured = fmt(row.get("measured"), row["unit"])
        notes = row.get("notes") or []
        if notes:
            measured += " (" + "; ".join(n.removeprefix("invalid: ") for n in notes) + ")"
        op = {">=": "≥", "<=": "≤"}[row["op"]]
        target = f"{op} {fmt(row['target'], row['unit'])}"
        lines.append(f"| {row['label']} | {measured} | {target} | {_met(row.get('met'))} |")
    for key, label, unit in CONTEXT:
        lines.append(f"| {label} | {fmt(figures.get(key), unit)} | | |")
    missed = [row for row in rows if row.get("met") is False]
    if missed:
        lines += ["", "## What bounds the figures that miss their target", ""]
        lines += [f"- **{row['label']}**: {row.get('bound') or 'see below'}." for row in missed]
    lines += ["", "## Scenarios", "",
              "| scenario | load | sent | ok | failed | ok/s | p50 | p99 | CPU |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, record in scenarios.items():
        lines.append(_scenario_row(name, record, cpus))
    lines += _receipts_table(scenarios)
    lines += _smpp_table(scenarios)
    lines += _webhooks_table(scenarios)
    for name in ("reference", "reference_grouped"):
        reference = (scenarios.get(name) or {}).get("result") or {}
        if not reference.get("levels"):
            continue
        group = (reference.get("config") or {}).get("group", 1)
        lines += ["", f"Reference limit by concurrency, {group} request(s) per transaction "
                  f"(benchmarks/reference_limit.py --group {group}):", "",
                  "| connections | requests/s | p50 | p99 | client CPU | box busy |",
                  "|---|---|---|---|---|---|"]
        for level in reference["levels"]:
            lat = level.get("latency_ms") or {}
            busy = level.get("box_busy_cores")
            lines.append(f"| {level['concurrency']} | {level['tx_per_s']:,.0f} | "
                         f"{fmt(lat.get('p50'), 'ms')} | {fmt(lat.get('p99'), 'ms')} | "
                         f"{level.get('client_cpu_share', 0):.0%} | "
                         f"{'—' if busy is None else f'{busy:.2f} cores'} |")
    settings = results.get("settings") or {}
    if settings:
        lines += ["", "Settings of the gateway's processes: "
                  + ", ".join(f"`{k}={v}`" for k, v in sorted(settings.items())) + "."]
    for note in results.get("notes") or []:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _receipts_table(scenarios: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The receipts scenario's two halves side by side."""
    ok = _ok_halves(scenarios, "receipts")
    if ok is None:
        return []
    both = functools.partial(_both, ok)
    delivery = _delivery

    def receipts(record: Mapping[str, Any]) -> str:
        rx = record.get("receipts") or {}
        if not rx.get("applied"):
            return "—"
        by = rx.get("by_status") or {}
        owed = rx.get("simulators") or {}
        text = (f"{rx['applied']:,} ({', '.join(f'{n:,} {s}' for s, n in by.items())}) of "
                f"{owed.get('reported', 0):,} the simulators had taken")
        gateway = rx.get("gateway") or {}
        kept = sum(int(m.get("kept", 0)) for m in gateway.values() if "error" not in m)
        duplicates = sum(int(m.get("duplicate", 0)) for m in gateway.values()
                         if "error" not in m)
        return text + f"; {kept:,} kept for their answer, {duplicates:,} duplicates"

    def seconds(record: Mapping[str, Any]) -> str:
        spent = cpu_seconds(record)
        return ", ".join(f"{g} {spent.get(g, 0.0):.1f}" for g in GATEWAY_GROUPS) + " s"

    def send(record: Mapping[str, Any]) -> str:
        per = send_cpu_ms(record)
        return (", ".join(f"{g} {ms:.2f}" for g, ms in per.items()) + " ms") if per else "—"

    def locks(record: Mapping[str, Any]) -> str:
        counts = record.get("innodb") or {}
        if not counts:
            return "—"
        return (f"{counts.get('innodb_deadlocks', 0):,}, {counts.get('innodb_row_lock_waits', 0):,}"
                f" ({counts.get('innodb_row_lock_time', 0):,} ms)")

    lines = ["", "Receipts, end to end at the same load without them and with them (each "
             "half in processes of its own; delivered/s is recipients terminal over the span "
             "from the first accepted to the last DONE or FAILED, receipts/s receipts applied "
             "over the span from the first applied to the last):", "",
             "| | receipts off | receipts on |", "|---|---|---|",
             "| accepted | " + both(lambda r: f"{(r.get('loadtest') or {}).get('ok', 0):,}")
             + " |",
             "| delivered (failed, unfinished) | " + both(
                 lambda r: f"{delivery(r, 'delivered'):,} ({delivery(r, 'failed'):,}, "
                           f"{delivery(r, 'unfinished'):,})") + " |",
             "| delivered/s | " + both(lambda r: fmt(number(delivery(r, 'delivered_per_s')),
                                                      "delivered/s")) + " |",
             "| receipts applied | " + both(receipts) + " |",
             "| receipts applied/s | " + both(lambda r: fmt(number(
                 (r.get("receipts") or {}).get("applied_per_s")), "receipts/s")) + " |",
             "| CPU, whole half | " + both(seconds) + " |",
             "| CPU per delivered SMS (api per accepted request) | " + both(send) + " |",
             "| MariaDB deadlocks, row lock waits (server-wide) | " + both(locks) + " |"]
    if ok["off"] and ok["on"]:
        extra = receipt_cpu_ms(ok["off"], ok["on"])
        if extra:
            lines.append("| extra CPU per receipt applied | — | "
                         + ", ".join(f"{g} {ms:.2f}" for g, ms in extra.items())
                         + f" ms, {sum(extra.values()):.2f} ms in all |")
    return lines


def _smpp_table(scenarios: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The smpp scenario's two halves side by side: HTTP operators, then SMPP ones."""
    halves = {half: scenarios.get(f"smpp_{half}") or {} for half in ("http", "smpp")}
    if not any(r.get("status") == "ok" for r in halves.values()):
        return []
    ok = {half: r if r.get("status") == "ok" else {} for half, r in halves.items()}

    def both(value: Any) -> str:
        return " | ".join(value(ok[half]) if ok[half] else "—" for half in ("http", "smpp"))

    def delivery(record: Mapping[str, Any], key: str) -> Any:
        return (record.get("delivery") or {}).get(key)

    def seconds(record: Mapping[str, Any]) -> str:
        spent = cpu_seconds(record)
        return ", ".join(f"{g} {spent.get(g, 0.0):.1f}" for g in (*GATEWAY_GROUPS, "operators")) \
            + " s"

    def send(record: Mapping[str, Any]) -> str:
        per = send_cpu_ms(record)
        if not per:
            return "—"
        return (", ".join(f"{g} {ms:.2f}" for g, ms in per.items())
                + f" ms, {sum(per.values()):.2f} ms in all")

    def operators(record: Mapping[str, Any]) -> str:
        stats = record.get("operators") or {}
        taken = sum(int(s.get("accepted", 0)) for s in stats.values() if isinstance(s, Mapping))
        text = f"{taken:,} taken"
        smscs = record.get("smscs")
        if isinstance(smscs, Mapping):
            text += "; " + ", ".join(f"{smscs.get(k, 0):,} {k.replace('_', ' ')}" for k in (
                "binds", "duplicates", "throttled", "failed", "links_dropped"))
        return text

    def gateway(record: Mapping[str, Any]) -> str:
        metrics = record.get("gateway_smpp")
        if not isinstance(metrics, Mapping):
            return "—"
        read = [m for m in metrics.values() if isinstance(m, Mapping) and "error" not in m]
        if not read:
            return "—"
        total = {key: sum(float(m.get(key, 0.0)) for m in read)
                 for key in ("binds", "link_drops", "throttled")}
        return (f"{total['binds']:,.0f} bound at the end, {total['link_drops']:,.0f} link "
                f"drops, {total['throttled']:,.0f} throttled")

    window = ok["smpp"].get("smpp_window") if ok["smpp"] else None
    return ["", "SMPP, end to end at the same load over HTTP operators and over SMPP ones "
            f"(two simulated SMSCs, a bind per worker process, window {window or '?'}; no "
            "receipts in either half, each in processes of its own; delivered/s is "
            "recipients terminal over the span from the first accepted to the last DONE or "
            "FAILED):", "",
            "| | HTTP operators | SMPP operators |", "|---|---|---|",
            "| accepted | " + both(lambda r: f"{(r.get('loadtest') or {}).get('ok', 0):,}")
            + " |",
            "| delivered (failed, unfinished) | " + both(
                lambda r: f"{delivery(r, 'delivered'):,} ({delivery(r, 'failed'):,}, "
                          f"{delivery(r, 'unfinished'):,})") + " |",
            "| delivered/s | " + both(lambda r: fmt(number(delivery(r, 'delivered_per_s')),
                                                     "delivered/s")) + " |",
            "| CPU, whole half | " + both(seconds) + " |",
            "| CPU per delivered SMS (api per accepted request) | " + both(send) + " |",
            "| the operator simulators | " + both(operators) + " |",
            "| the workers' smsgw_smpp_* | " + both(gateway) + " |"]


def _webhooks_table(scenarios: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The webhooks scenario's two halves side by side: no endpoints, then one for
    every customer."""
    ok = _ok_halves(scenarios, "webhooks")
    if ok is None:
        return []
    both = functools.partial(_both, ok)
    delivery = _delivery

    def hooks(record: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = (record.get("webhooks") or {}).get(key)
        return value if isinstance(value, Mapping) else {}

    def endpoints(record: Mapping[str, Any]) -> str:
        count = (record.get("webhooks") or {}).get("endpoints")
        if not count:
            return "none"
        return (f"{count:,}, registered in {record['webhooks'].get('registered_in_s', '?')} s "
                "(before the load)")

    def events(record: Mapping[str, Any]) -> str:
        ev = hooks(record, "events")
        if not ev:
            return "—"
        types = ", ".join(f"{n:,} {t}" for t, n in sorted((ev.get("by_type") or {}).items()))
        return (f"{ev.get('written', 0):,} written ({types}); {ev.get('delivered', 0):,} "
                f"delivered, {ev.get('pending', 0):,} pending, {ev.get('dead', 0):,} dead")

    def waits(record: Mapping[str, Any]) -> str:
        ev = hooks(record, "events")
        lat = ev.get("latency_ms") or {}
        if not lat:
            return "—"
        after = number(ev.get("last_after_delivery_s"))
        return (f"mean {fmt(number(lat.get('mean')), 'ms')}, p50 "
                f"{fmt(number(lat.get('p50')), 'ms')}, p99 {fmt(number(lat.get('p99')), 'ms')},"
                f" max {fmt(number(lat.get('max')), 'ms')}; the last "
                f"{fmt(after * 1000 if after is not None else None, 'ms')} after the last SMS")

    def attempts(record: Mapping[str, Any]) -> str:
        at = hooks(record, "attempts")
        if not at:
            return "—"
        codes = ", ".join(f"{n:,} {c}" for c, n in sorted((at.get("by_code") or {}).items()))
        text = f"{at.get('total', 0):,} ({codes}), {at.get('failed', 0):,} failed"
        errors = at.get("errors") or {}
        if errors:
            text += "; " + "; ".join(f"{e}: {n:,}" for e, n in errors.items())
        return text

    def receiver(record: Mapping[str, Any]) -> str:
        got, checked = hooks(record, "receiver"), hooks(record, "verified")
        if not got:
            return "—"
        text = (f"{got.get('requests', 0):,} requests, {got.get('unique', 0):,} distinct "
                f"events, {got.get('duplicates', 0):,} twice, "
                f"{got.get('missing_headers', 0):,} unsigned")
        if checked:
            text += (f"; signatures of {checked.get('checked', 0):,} sampled verified: "
                     f"{checked.get('passed', 0):,} passed")
        return text

    def seconds(record: Mapping[str, Any]) -> str:
        spent = cpu_seconds(record)
        return ", ".join(f"{g} {spent.get(g, 0.0):.1f}"
                         for g in (*WEBHOOK_GROUPS, "receiver")) + " s"

    def sql(record: Mapping[str, Any]) -> str:
        metrics, ev = hooks(record, "metrics"), hooks(record, "events")
        delivered = ev.get("delivered") or 0
        if not delivered or "db_count" not in metrics:
            return "—"
        ops = ", ".join(f"{op} {metrics[f'db_{op}_count'] / delivered:.2f}"
                        for op in ("select", "insert", "update", "delete", "other")
                        if metrics.get(f"db_{op}_count"))
        return (f"{metrics['db_count'] / delivered:.2f} statements per event ({ops}), "
                f"{metrics.get('db_sum', 0.0) / delivered * 1000:.2f} ms of round trips")

    def send(record: Mapping[str, Any]) -> str:
        per = send_cpu_ms(record, WEBHOOK_GROUPS)
        if not per:
            return "—"
        return (", ".join(f"{g} {ms:.2f}" for g, ms in per.items())
                + f" ms, {sum(per.values()):.2f} ms in all")

    settings = (ok["on"] or ok["off"]).get("webhooks", {}).get("settings") or {}
    lines = ["", "Status webhooks, end to end at the same load without endpoints and with one "
             "for every customer of the load test, subscribed to every event type (each half "
             "in processes of its own, with the same settings; no receipts, so one event per "
             "recipient; `smsgw webhooks` with "
             + ", ".join(f"{k}={v}" for k, v in settings.items() if k.startswith("SMSGW"))
             + f", the receiver on {settings.get('receiver_ports', '?')} ports; delivered/s "
             "is recipients terminal over the span from the first accepted to the last DONE "
             "or FAILED, events/s events delivered over the span from the first written to "
             "the last delivered):", "",
             "| | webhooks off | webhooks on |", "|---|---|---|",
             "| accepted | " + both(lambda r: f"{(r.get('loadtest') or {}).get('ok', 0):,}")
             + " |",
             "| delivered (failed, unfinished) | " + both(
                 lambda r: f"{delivery(r, 'delivered'):,} ({delivery(r, 'failed'):,}, "
                           f"{delivery(r, 'unfinished'):,})") + " |",
             "| delivered/s | " + both(lambda r: fmt(number(delivery(r, 'delivered_per_s')),
                                                      "delivered/s")) + " |",
             "| endpoints | " + both(endpoints) + " |",
             "| webhook events | " + both(events) + " |",
             "| events delivered/s | " + both(lambda r: fmt(number(
                 hooks(r, "events").get("delivered_per_s")), "events/s")) + " |",
             "| written → delivering attempt | " + both(waits) + " |",
             "| attempts | " + both(attempts) + " |",
             "| the webhooks process's SQL | " + both(sql) + " |",
             "| the receiver | " + both(receiver) + " |",
             "| CPU, whole half | " + both(seconds) + " |",
             "| CPU per delivered SMS (api per accepted request) | " + both(send) + " |"]
    if ok["off"] and ok["on"]:
        extra = webhook_cpu_ms(ok["off"], ok["on"])
        if extra:
            lines.append("| extra CPU per event delivered | — | "
                         + ", ".join(f"{g} {ms:.2f}" for g, ms in extra.items())
                         + f" ms, {sum(extra.values()):.2f} ms in all |")
    return lines


def _scenario_row(name: str, record: Mapping[str, Any], cpus: int) -> str:
    what = record.get("description", "")
    if record.get("status") != "ok":
        return f"| {name} | {what} | failed: {record.get('error')} | | | | | | |"
    doc = record.get("loadtest")
    cpu = cpu_summary(record, cpus) or ""
    if not isinstance(doc, Mapping):
        return f"| {name} | {what} | | | | | | | {cpu} |"
    lat = doc.get("latency_ms") or {}
    return (f"| {name} | {what} | {doc.get('sent', 0):,} | {doc.get('ok', 0):,} | "
            f"{failed_requests(doc):,} | {fmt(ok_per_s(doc), '')} | "
            f"{fmt(number(lat.get('p50')), 'ms')} | {fmt(number(lat.get('p99')), 'ms')} | "
            f"{cpu} |")


def _ok_halves(scenarios: Mapping[str, Mapping[str, Any]], name: str,
               ) -> dict[str, Mapping[str, Any]] | None:
    """The `<name>_off` and `<name>_on` records, {} for a half that did not run well;
    None when neither did."""
    halves = {half: scenarios.get(f"{name}_{half}") or {} for half in ("off", "on")}
    if not any(r.get("status") == "ok" for r in halves.values()):
        return None
    return {half: r if r.get("status") == "ok" else {} for half, r in halves.items()}


def _both(ok: Mapping[str, Mapping[str, Any]], value: Any) -> str:
    """One table row's two cells: `value` of each half, or a dash."""
    return " | ".join(value(ok[half]) if ok[half] else "—" for half in ("off", "on"))


def _delivery(record: Mapping[str, Any], key: str) -> Any:
    return (record.get("delivery") or {}).get(key)
