"""The pure part of `make bench`: figures from the scenarios' documents, targets, Markdown.

No I/O here: benchmarks/run.py measures and writes, this module only computes, so
that tests/tooling/test_bench_report.py can check it without services.

A scenario's record (what run.py keeps under "scenarios" in the results JSON):

    {"status": "ok" | "failed", "error": str | None,
     "loadtest": <`smsgw loadtest --json` document>,      # the load scenarios
     "result": <reference_limit.py --json document>,      # the reference scenario
     "cpu": {"elapsed_s", "machine_busy_cores", "cores": {group: cores}},
     ... scenario-specific facts (express: "backlog_recipients", "normal_unfinished_at_end")}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Scenarios = Mapping[str, Mapping[str, Any]]
Figures = dict[str, float | None]

FAILURE_SHARE_LIMIT = 0.01  # more failed requests than this and a latency figure does not count
OPEN_LOOP_RPS = 1000  # the rate of the accept latency target
EXPRESS_BACKLOG = 100_000  # normal recipients the express target is measured behind
E2E_SECONDS = 60
TIMES = "\N{MULTIPLICATION SIGN}"


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
    Target("e2e_delivered_per_s", "end to end, 2 operators, sustained 60 s",
           ">=", 1200, "delivered/s"),
    Target("express_p99_ms", "express p99 accept→terminal behind 100,000 normal",
           "<=", 500, "ms"),
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
    ("e2e_accepted_rps", "end to end: accepted", "req/s"),
    ("express_p50_ms", "express p50 accept→terminal behind the backlog", "ms"),
    ("express_backlog_recipients", "normal recipients queued before express", "recipients"),
)


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


def _latency(doc: Mapping[str, Any] | None, key: str) -> float | None:
    if doc is None:
        return None
    value = (doc.get("latency_ms") or {}).get(key)
    return float(value) if isinstance(value, int | float) else None


def _delivery(doc: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if doc is None:
        return None
    delivery = doc.get("delivery")
    return delivery if isinstance(delivery, Mapping) else None


def _ratio(a: float | None, b: float | None) -> float | None:
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
    figures["accept_spread_p99_ms"] = _latency(spread, "p99")
    figures["accept_vs_reference"] = _ratio(figures["accept_spread_rps"],
                                            figures["reference_limit_tx_per_s"])

    hot = loadtest(scenarios, "accept_hot")
    figures["accept_hot_rps"] = ok_per_s(hot) if hot else None
    figures["hot_vs_spread"] = _ratio(figures["accept_hot_rps"], figures["accept_spread_rps"])

    hundred = loadtest(scenarios, "accept_100")
    figures["accept_100_recipients_per_s"] = recipients_per_s(hundred) if hundred else None

    open_loop = loadtest(scenarios, "accept_1000rps")
    figures["accept_1000_achieved_rps"] = ok_per_s(open_loop) if open_loop else None
    figures["accept_p99_at_1000_ms"] = _latency(open_loop, "p99")

    e2e = loadtest(scenarios, "end_to_end")
    delivered = _delivery(e2e)
    figures["e2e_accepted_rps"] = ok_per_s(e2e) if e2e else None
    figures["e2e_delivered_per_s"] = (
        float(delivered["delivered_per_s"]) if delivered and "delivered_per_s" in delivered
        else None
    )

    express_record = scenarios.get("express") or {}
    express = _delivery(loadtest(scenarios, "express"))
    latency = ((express or {}).get("latency_ms") or {}).get("express") or {}
    figures["express_p50_ms"] = _number(latency.get("p50"))
    figures["express_p99_ms"] = _number(latency.get("p99"))
    figures["express_backlog_recipients"] = _number(express_record.get("backlog_recipients"))
    return figures


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


# ---------------------------------------------------------------- targets


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
    "express_p99_ms": "express",
}


def _caveats(target: Target, figures: Figures, scenarios: Scenarios) -> list[str]:
    """Why a figure may not say what its target asks. "invalid:" ones make it not met."""
    notes: list[str] = []
    name = _SCENARIO_OF[target.figure]
    record = scenarios.get(name) or {}
    if record.get("status") == "failed":
        notes.append(f"scenario {name} failed: {record.get('error')}")
    doc = loadtest(scenarios, name)
    if doc is not None:
        failed, sent = failed_requests(doc), doc.get("sent", 0)
        if failed:
            share = failed / sent if sent else 1.0
            kinds = {**(doc.get("non_2xx") or {}), **(doc.get("errors") or {})}
            text = f"{failed} of {sent} requests failed ({_kinds(kinds)})"
            notes.append(f"invalid: {text}" if share > FAILURE_SHARE_LIMIT else text)
    if target.figure == "accept_p99_at_1000_ms":
        achieved = figures.get("accept_1000_achieved_rps")
        if achieved is not None and achieved < 0.95 * OPEN_LOOP_RPS:
            notes.append(f"invalid: the open loop reached only {achieved:,.0f} req/s")
    if target.figure == "e2e_delivered_per_s" and doc is not None:
        seconds = (doc.get("config") or {}).get("duration")
        if isinstance(seconds, int | float) and seconds < E2E_SECONDS:
            notes.append(f"ran {seconds:g} s, not {E2E_SECONDS} s")
        delivery = _delivery(doc) or {}
        for key in ("failed", "unfinished"):
            if delivery.get(key):
                notes.append(f"{delivery[key]} recipients {key}")
    if target.figure == "express_p99_ms":
        backlog = figures.get("express_backlog_recipients")
        if backlog is not None and backlog < EXPRESS_BACKLOG:
            notes.append(f"behind {backlog:,.0f} normal recipients, not {EXPRESS_BACKLOG:,}")
        left = record.get("normal_unfinished_at_end")
        if left == 0:
            notes.append("invalid: the normal backlog had drained before the express run ended")
        elif isinstance(left, int):
            notes.append(f"{left:,} normal recipients still queued when it ended")
        delivery = _delivery(doc) or {}
        if delivery.get("unfinished"):
            notes.append(f"{delivery['unfinished']} express recipients unfinished")
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
}


def cpu_budget(target: Target, figures: Figures, record: Mapping[str, Any] | None,
               cpus: int) -> str | None:
    """For a throughput: the CPU each unit of work took, per process group, and the
    most the machine's cores could carry at that cost — the measured bound."""
    unit, units = _UNIT_OF.get(target.figure, (None, None))
    rate = figures.get("accept_spread_rps" if target.figure == "accept_vs_reference"
                       else target.figure)
    cores = ((record or {}).get("cpu") or {}).get("cores") or {}
    if unit is None or not rate or not cores:
        return None
    # End to end, the API and the load generator work per accepted request, the
    # rest per delivered SMS: an overloaded pipeline accepts more than it delivers.
    accepted = figures.get("e2e_accepted_rps") if target.figure == "e2e_delivered_per_s" else None
    per = {g: accepted if accepted and g in ("api", "loadtest") else rate for g in cores}
    spent = sorted(((g, c / per[g] * 1000) for g, c in cores.items() if c >= 0.01),
                   key=lambda gc: -gc[1])
    total = sum(ms for _, ms in spent)
    if total <= 0:
        return None
    parts = ", ".join(f"{group} {ms:.2f}" for group, ms in spent)
    return (f"CPU per {unit}: {parts} ms, {total:.2f} ms in all; at that cost {cpus} cores "
            f"carry at most {cpus * 1000 / total:,.0f} {units}/s")


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
    if target.figure == "express_p99_ms":
        said.append("accept→terminal is outbox wait (relay claim) + queue wait + the worker's "
                    "claim, operator call and record; the normal backlog shares the relay, "
                    "broker, worker process, operators and database with it")
    budget = cpu_budget(target, figures, record, cpus)
    if budget:
        said.append(budget)
    summary = cpu_summary(record, cpus)
    if summary:
        if saturated(record, cpus):
            said.append(f"CPU-bound: {summary}")
        else:
            said.append(f"not CPU-bound ({summary}): the time goes to waiting — round trips, "
                        "commit flushes, polls")
    return "; ".join(said) or "see the scenario's CPU sample"


# ---------------------------------------------------------------- Markdown


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ratio":
        return f"{value:.2f}{TIMES}"
    if unit == "ms":
        return f"{value:,.1f} ms"
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
            f"{fmt(_number(lat.get('p50')), 'ms')} | {fmt(_number(lat.get('p99')), 'ms')} | "
            f"{cpu} |")
