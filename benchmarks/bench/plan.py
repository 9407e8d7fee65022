"""What `make bench` runs: its scenario groups, the customers, and how long and how hard."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from benchmarks.bench.figures import E2E_SECONDS, EXPRESS_BACKLOG, OPEN_LOOP_RPS

GROUPS = ("reference", "accept", "end_to_end", "express", "fairness", "receipts", "smpp",
          "webhooks")
USERS = 5000
BALANCE = 1_000_000_000  # enough for every scenario: nobody runs out


@dataclass(frozen=True, slots=True)
class Plan:
    """How long and how hard each scenario runs."""

    reference_levels: str = "4,8,16,32,64,128"
    reference_seconds: float = 4.0  # per level, after 1 s of warm-up
    reference_group: int = 32  # requests per grouped reference transaction
    reference_group_levels: str = "2,4,8,16"
    accept_seconds: float = 20.0
    accept_concurrency: int = 64  # closed loop: requests in flight
    accept_100_concurrency: int = 32
    open_loop_rps: int = OPEN_LOOP_RPS
    open_loop_concurrency: int = 256  # the most in flight the open loop may have
    e2e_rps: int = 1300
    e2e_seconds: float = E2E_SECONDS
    e2e_concurrency: int = 256
    backlog_recipients: int = EXPRESS_BACKLOG
    backlog_rps: int = 100  # requests of 100 recipients each
    express_rps: int = 50
    express_seconds: float = 20.0
    # Normal sends that keep arriving while express goes (the backlog is live).
    express_normal_rps: int = 100
    express_normal_recipients: int = 10
    delivery_timeout_s: float = 180.0
    # The heavy customer's recipients, in SMS of 100: over 20,000 still queued when the
    # light customers start, and some left after the window alone that follows them.
    fairness_backlog: int = 26_000
    fairness_latency_ms: int = 200  # each operator's: operator capacity is the bound
    fairness_lights: int = 10  # light customers
    fairness_rps: int = 10  # light normal requests per second, and express ones
    fairness_warmup_s: float = 2.0  # from the heavy customer's first delivery
    fairness_before_s: float = 3.0  # the heavy customer's rate alone: before and after
    fairness_seconds: float = 10.0
    # End to end twice, receipts off then on, each at e2e_rps and e2e_concurrency.
    receipts_seconds: float = E2E_SECONDS
    receipt_delay_ms: int = 200  # from a send's arrival at the simulator to its receipt
    # End to end twice, HTTP operators then SMPP ones, each at e2e_rps and e2e_concurrency.
    smpp_seconds: float = E2E_SECONDS
    smpp_window: int = 10  # each SMPP bind's window (issue 26's bar: windows of 10)
    # End to end twice, webhooks off then on (every customer's endpoint, every type),
    # each at e2e_rps and e2e_concurrency.
    webhooks_seconds: float = E2E_SECONDS
    # The receiver's ports, the customers spread over them: not one host:port for all,
    # which a sender's connection cap per host (4315a84's) would share among them.
    webhooks_receiver_ports: int = 16
    webhooks_settle_timeout_s: float = 600.0  # from the last SMS delivery to the last event


FULL = Plan()
QUICK = replace(
    FULL, reference_levels="8,32,128", reference_group_levels="4",
    reference_seconds=1.0, accept_seconds=4.0,
    e2e_rps=300, e2e_seconds=8.0, backlog_recipients=5_000, backlog_rps=50,
    express_rps=20, express_seconds=5.0, express_normal_rps=50, delivery_timeout_s=60.0,
    fairness_backlog=13_000, fairness_warmup_s=1.0, fairness_before_s=2.0,
    fairness_seconds=4.0, receipts_seconds=8.0, smpp_seconds=8.0, webhooks_seconds=8.0,
    webhooks_settle_timeout_s=120.0,
)


def with_changes(plan: Plan, changes: list[str]) -> Plan:
    """`plan` with FIELD=VALUE changes, each VALUE of the field's type."""
    values: dict[str, Any] = {}
    for change in changes:
        name, _, raw = change.partition("=")
        if name not in Plan.__dataclass_fields__ or not raw:
            raise ValueError(f"--plan {change!r}: expected FIELD=VALUE, FIELD one of "
                             f"{', '.join(Plan.__dataclass_fields__)}")
        kind = type(getattr(plan, name))
        values[name] = kind(raw) if kind is not float else float(raw)
    return replace(plan, **values)


def as_document(plan: Plan) -> dict[str, Any]:
    return {name: getattr(plan, name) for name in plan.__dataclass_fields__}
