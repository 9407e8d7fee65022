"""The receipts scenario's reading of the gateway: its tables, its metrics, the simulators.

Delivery is read from sms_status itself, not by `smsgw loadtest --wait-delivery`:
the load test waits for DONE or FAILED only, and a recipient a receipt moved on
(DELIVERED, UNDELIVERED, EXPIRED) before its poll saw it DONE would never count
as terminal. Both halves (receipts off and on) are read the same way here.
"""

from __future__ import annotations

import contextlib
import re
import time
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from benchmarks.bench.services import Services

# What each simulator reports of the sends it takes (docs/operators.md, "Simulators'
# receipts"): 95 % of them reported, 5 % never.
RECEIPT_PLAN = "delivered=0.85,undelivered=0.08,expired=0.02,none=0.05"
REPORTED = ("delivered", "undelivered", "expired")  # the statuses a receipt applies
RECEIPT_STATUSES = tuple(s.upper() for s in REPORTED)
UNFINISHED = ("PENDING", "SENDING")
SETTLE_TIMEOUT_S = 60.0  # from the last delivery to the last receipt applied, at most
POLL_S = 0.5

_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def poll(check: Callable[[], bool], timeout: float, every: float = POLL_S) -> float | None:
    """Seconds until `check()` held, or None when it still did not after `timeout`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            return None
        time.sleep(every)
    return round(time.monotonic() - started, 2)


def unfinished(services: Services) -> int:
    return services.count(f"sms_status WHERE status IN {UNFINISHED!r}")


_INNODB = ("Innodb_deadlocks", "Innodb_row_lock_waits", "Innodb_row_lock_time")


def innodb(services: Services) -> dict[str, int]:
    """MariaDB's deadlocks, row lock waits and their ms so far, server-wide (a
    conflict the gateway runs again is logged nowhere: these tell it happened)."""
    names = ", ".join(f"'{n}'" for n in _INNODB)
    rows = services.sql(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})", database=None)
    return {str(name).lower(): int(value) for name, value in rows}


def since(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {key: after[key] - before.get(key, 0) for key in after}


# ---------------------------------------------------------------- the metrics


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of each sample of a Prometheus text exposition."""
    found = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or line.startswith("#"):
            continue
        with contextlib.suppress(ValueError):
            labels = dict(_LABEL.findall(match.group(2) or ""))
            found.append((match.group(1), labels, float(match.group(3))))
    return found


def receipt_metrics(text: str) -> dict[str, float]:
    """One process's receipts: by status of smsgw_receipts_total (delivered, undelivered,
    expired, kept, duplicate) over its operators, "applied" the first three's sum, and
    smsgw_done_to_receipt_seconds' sum and count."""
    counts: dict[str, float] = {}
    for name, labels, value in samples(text):
        if name == "smsgw_receipts_total":
            status = labels.get("status", "?")
            counts[status] = counts.get(status, 0.0) + value
        elif name in ("smsgw_done_to_receipt_seconds_sum", "smsgw_done_to_receipt_seconds_count"):
            key = "done_to_receipt_" + name.rsplit("_", 1)[1]
            counts[key] = counts.get(key, 0.0) + value
    counts["applied"] = sum(counts.get(status, 0.0) for status in REPORTED)
    return counts


def scrape(urls: Mapping[str, str]) -> dict[str, dict[str, float] | dict[str, str]]:
    """Each process's receipt_metrics, by its name; {"error": …} where /metrics failed."""
    found: dict[str, dict[str, float] | dict[str, str]] = {}
    for name, url in urls.items():
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                found[name] = receipt_metrics(answer.read().decode())
        except OSError as exc:
            found[name] = {"error": str(exc)}
    return found


def applied_in(metrics: Mapping[str, Mapping[str, Any]]) -> int:
    return int(sum(float(m.get("applied", 0)) for m in metrics.values() if "error" not in m))


# ---------------------------------------------------------------- the simulators


def simulator_receipts(stats: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """The simulators' "receipts" counts added up: delivered, undelivered, expired (the
    gateway answered 200 for them), none, pending, refused; and "reported", the first
    three's sum. An unreadable /stats counts as a receipt still pending."""
    total = {key: 0 for key in (*REPORTED, "none", "pending", "refused")}
    for one in stats.values():
        receipts = one.get("receipts")
        if not isinstance(receipts, Mapping):
            total["pending"] += 1
            continue
        for key in total:
            total[key] += int(receipts.get(key, 0))
    total["reported"] = sum(total[status] for status in REPORTED)
    return total


# ---------------------------------------------------------------- the tables


def outcome(services: Services) -> dict[str, Any]:
    """Delivery and receipts as sms_status has them, the whole table being one run's.

    delivered_per_s is the load test's figure: terminal recipients over the span from
    the first accepted to the last DONE or FAILED. A recipient a receipt moved keeps
    only its receipt's time, so with receipts on the last DONE or FAILED is the last
    recipient no receipt reported (5 % of them: a few ms from the last at this rate).
    receipts applied_per_s: receipts applied over the span from the first applied to
    the last (their recipients' updated_at)."""
    rows = services.sql("SELECT status, COUNT(*), MIN(created_at), MIN(updated_at), "
                        "MAX(updated_at) FROM sms_status GROUP BY status")
    by_status = {str(r[0]): (int(r[1]), r[2], r[3], r[4]) for r in rows}
    return summarize(by_status)


Row = tuple[int, datetime, datetime, datetime]  # count, first created, first/last updated


def summarize(by_status: Mapping[str, Row]) -> dict[str, Any]:
    def count(statuses: tuple[str, ...]) -> int:
        return sum(by_status[s][0] for s in statuses if s in by_status)

    total = count(tuple(by_status))
    left = count(UNFINISHED)
    failed = count(("FAILED",))
    terminal = total - left
    delivery: dict[str, Any] = {"delivered": terminal - failed, "failed": failed,
                                "unfinished": left, "delivered_per_s": None}
    ends = [by_status[s][3] for s in ("DONE", "FAILED") if s in by_status]
    if not ends:  # every recipient moved on by a receipt: their receipts' times
        ends = [by_status[s][3] for s in RECEIPT_STATUSES if s in by_status]
    if by_status and ends:
        first = min(row[1] for row in by_status.values())
        span = (max(ends) - first).total_seconds()
        delivery["delivered_per_s"] = round(terminal / span, 3) if span > 0 else None
        delivery["span_s"] = round(span, 3)
    moved = [by_status[s] for s in RECEIPT_STATUSES if s in by_status]
    applied = sum(row[0] for row in moved)
    receipts: dict[str, Any] = {
        "applied": applied,
        "by_status": {s.lower(): by_status[s][0] if s in by_status else 0
                      for s in RECEIPT_STATUSES},
        "applied_per_s": None,
    }
    if moved:
        first_applied, last_applied = min(r[2] for r in moved), max(r[3] for r in moved)
        span = (last_applied - first_applied).total_seconds()
        receipts["span_s"] = round(span, 3)
        receipts["applied_per_s"] = round(applied / span, 3) if span > 0 else None
        if ends:  # how long after the last delivery the last receipt was applied
            receipts["last_after_delivery_s"] = round(
                (last_applied - max(ends)).total_seconds(), 3)
    return {"delivery": delivery, "receipts": receipts}
