"""Each scenario's record: measured, or failed with its error; and its one-line brief."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.bench.figures import ok_per_s
from benchmarks.bench.processes import ScenarioError


class Recorder:
    """Runs a scenario's measurement and keeps its record, whatever the measurement raised."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.scenarios: dict[str, dict[str, Any]] = {}

    def record(self, name: str, description: str, measure: Callable[[], dict[str, Any]]) -> None:
        print(f"- {name}: {description}", flush=True)
        record: dict[str, Any] = {"description": description, "status": "ok", "error": None}
        started = time.monotonic()
        try:
            record.update(measure())
        except Exception as exc:
            error = str(exc) if isinstance(exc, ScenarioError) else f"{type(exc).__name__}: {exc}"
            record.update(status="failed", error=error)
            print(f"  FAILED: {error} (logs in {self.logdir})", flush=True)
        record["wall_s"] = round(time.monotonic() - started, 1)
        self.scenarios[name] = record
        if record["status"] == "ok":
            print(f"  {brief(record)}", flush=True)

    def fail_all(self, names: list[tuple[str, str]], exc: Exception) -> None:
        for name, description in names:
            self.record(name, description, lambda: _raise(exc))


def _raise(exc: Exception) -> dict[str, Any]:
    raise exc


def brief(record: dict[str, Any]) -> str:
    if "result" in record:
        best = record["result"]["best"]
        return f"best {best['tx_per_s']:,.0f} tx/s at {best['concurrency']} connections"
    doc = record.get("loadtest") or {}
    rate = ok_per_s(doc) or 0.0
    text = (f"{doc.get('ok', 0):,} ok of {doc.get('sent', 0):,}, {rate:,.0f} ok/s, "
            f"p99 {(doc.get('latency_ms') or {}).get('p99', '?')} ms")
    delivery = doc.get("delivery") or record.get("delivery")  # receipts: read from the tables
    if delivery:
        text += f", delivered/s {delivery.get('delivered_per_s')}"
        express = ((delivery.get("latency_ms") or {}).get("express") or {})
        if express.get("count"):
            text += f", express p50/p99 {express.get('p50')}/{express.get('p99')} ms"
    receipts = record.get("receipts") or {}
    if receipts.get("applied"):
        owed = receipts.get("simulators") or {}
        text += (f", receipts applied {receipts['applied']:,} of {owed.get('reported', 0):,} "
                 f"reported, {receipts.get('applied_per_s')}/s")
    return text
