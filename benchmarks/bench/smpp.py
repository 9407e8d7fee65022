"""The smpp scenario's reading of the SMPP side: the simulated SMSCs' counts and the
workers' smsgw_smpp_* metrics (both halves' delivery is read from sms_status, as the
receipts scenario's is: receipts.outcome)."""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from typing import Any

from benchmarks.bench.receipts import samples

# The binds' credentials of `smsgw operator-sim --smpp` (its defaults, given explicitly).
SYSTEM_ID = "smsgw"
PASSWORD = "smsgw"
# What an SMSC's /stats counts (docs/operators.md, "The SMPP simulator").
SMSC_COUNTS = ("binds", "bind_failures", "submits", "accepted", "duplicates", "rejected",
               "throttled", "failed", "links_dropped", "unanswered")
# The simulators report no receipt: both halves measure the send path alone (the HTTP
# half's operators carry receipt tokens, so the workers look for kept receipts in both).
NO_RECEIPTS = "none=1"


def operators_url(smscs: Mapping[str, str], window: int) -> str:
    """SMSGW_OPERATORS for SMSCs by name at their host:port, each bind with `window`."""
    return ",".join(f"{name}=smpp://{SYSTEM_ID}:{PASSWORD}@{address}?window={window}"
                    for name, address in smscs.items())


def smsc_counts(stats: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """The SMSCs' /stats counts added up; "unreadable": how many /stats could not be read."""
    total = {key: 0 for key in SMSC_COUNTS}
    total["unreadable"] = 0
    for one in stats.values():
        if "error" in one:
            total["unreadable"] += 1
            continue
        for key in SMSC_COUNTS:
            total[key] += int(one.get(key, 0))
    return total


def smpp_metrics(text: str) -> dict[str, float]:
    """One process's smsgw_smpp_* over its operators: binds (bound now), link_drops,
    throttled, and deliver_sm_<outcome>."""
    found: dict[str, float] = {}
    for name, labels, value in samples(text):
        if name == "smsgw_smpp_binds":
            key = "binds"
        elif name == "smsgw_smpp_link_drops_total":
            key = "link_drops"
        elif name == "smsgw_smpp_throttled_total":
            key = "throttled"
        elif name == "smsgw_smpp_deliver_sm_total":
            key = f"deliver_sm_{labels.get('outcome', '?')}"
        else:
            continue
        found[key] = found.get(key, 0.0) + value
    return found


def scrape(urls: Mapping[str, str]) -> dict[str, dict[str, float] | dict[str, str]]:
    """Each process's smpp_metrics, by its name; {"error": …} where /metrics failed."""
    found: dict[str, dict[str, float] | dict[str, str]] = {}
    for name, url in urls.items():
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                found[name] = smpp_metrics(answer.read().decode())
        except OSError as exc:
            found[name] = {"error": str(exc)}
    return found
