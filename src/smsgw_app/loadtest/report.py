"""Percentiles and the two forms of the report: a JSON document and a human one."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99))


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50, p90, p95, p99 and max of durations in seconds, in milliseconds.

    Nearest rank on the sorted values (the smallest value with at least p of
    them at or below it), so every figure is an observed latency and
    p50 <= p90 <= p95 <= p99 <= max always holds. None when there are none.
    """
    if not seconds:
        return {name: None for name in (*dict(PERCENTILES), "max")}
    ordered = sorted(seconds)
    count = len(ordered)
    figures: dict[str, float | None] = {}
    for name, share in PERCENTILES:
        rank = max(1, math.ceil(share * count))
        figures[name] = round(ordered[rank - 1] * 1000, 3)
    figures["max"] = round(ordered[-1] * 1000, 3)
    return figures


def human(document: dict[str, Any]) -> str:
    """The report as a few aligned lines, from the JSON document."""
    config = document["config"]
    loop = (f"open loop at {config['rps']:g} req/s" if config["rps"] > 0
            else "closed loop (back to back)")
    lines = [
        f"{loop} for {config['duration']:g} s, {config['concurrency']} connections to "
        f"{', '.join(config['url'])}",
        f"sent      {document['sent']}"
        + (f"  ({document['unsent']} scheduled but not sent: the server did not keep up)"
           if document.get("unsent") else ""),
        f"ok (2xx)  {document['ok']}",
        f"non-2xx   {sum(document['non_2xx'].values())}{_counts(document['non_2xx'])}",
        f"errors    {sum(document['errors'].values())}{_counts(document['errors'])}",
        f"elapsed   {document['elapsed_s']:.2f} s",
        f"rate      {document['achieved_rps']:.1f} req/s accepted, "
        f"{document['recipients_per_s']:.1f} recipients/s",
        f"latency   {_figures(document['latency_ms'])} ms of 2xx answers, from the "
        + ("scheduled start (queueing in the generator counts)"
           if document["latency_from"] == "schedule" else "send"),
        f"generator {document['generator_cpu_s']:.2f} s CPU while sending "
        f"({document['generator_cpu_percent']:.1f}% of one core"
        + (f", {1e6 * document['generator_cpu_s'] / document['sent']:.0f} µs a request)"
           if document["sent"] else ")"),
    ]
    delivery = document.get("delivery")
    if delivery is not None:
        per_s = delivery["delivered_per_s"]
        lines.append(
            f"delivery  {delivery['delivered']} delivered, {delivery['failed']} failed, "
            f"{delivery['unfinished']} unfinished; "
            + (f"{per_s:.1f} recipients/s end to end" if per_s is not None
               else "rate not measurable")
        )
        for kind in ("express", "normal"):
            figures = delivery["latency_ms"][kind]
            lines.append(f"  {kind:8s}accept→terminal {_figures(figures)} ms "
                         f"({figures['count']} recipients)")
    return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    if not counts:
        return ""
    return "  (" + ", ".join(f"{key}: {value}" for key, value in sorted(counts.items())) + ")"


def _figures(figures: dict[str, Any]) -> str:
    def show(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    return "  ".join(f"{name} {show(figures[name])}" for name in ("p50", "p90", "p95", "p99",
                                                                   "max"))
