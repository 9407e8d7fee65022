"""The Grafana dashboard is valid JSON and only charts metrics the catalogue defines."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "docs" / "observability.md"


def catalogue() -> set[str]:
    return set(re.findall(r"^\| `(smsgw_[a-z_]+)` \|", CATALOGUE.read_text(), re.MULTILINE))


def test_every_panel_queries_catalogued_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "smsgw.json").read_text())
    known = catalogue()
    assert len(known) >= 19
    used: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["title"] and panel["targets"]
        for target in panel["targets"]:
            for name in re.findall(r"\b(smsgw_[a-z_]+)", target["expr"]):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                assert base in known, (panel["title"], name)
                used.add(base)
    assert {"smsgw_outbox_backlog_events", "smsgw_operator_breaker_state",
            "smsgw_accept_to_terminal_seconds", "smsgw_ledger_amount_units_total"} <= used
