"""Every catalogued metric, scraped from real processes after real sends, in every mode.

One gateway per mode takes two sends through operators that fail in known ways:
A always fails transiently (its first call, two tries, opens its circuit), B delivers but
refuses numbers starting 0999. The figures are summed over the mode's processes
(`smsgw serve` alone; or `smsgw api` on its API port plus `smsgw relay` and
`smsgw worker` on their SMSGW_METRICS_PORT) and compared before and after. Every
endpoint takes the metrics token (SMSGW_METRICS_TOKEN) and refuses without it.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import Gateway, GatewayFactory, free_port, wait_until
from tests.integration.helpers import send

ROOT = Path(__file__).resolve().parents[2]
OPERATORS = "A=sim://?fail_rate=1,B=sim://?reject_prefix=0999"
SETTINGS = {
    # A's first call (two tries, one failed call of one) opens its circuit.
    "SMSGW_BREAKER_MIN_CALLS": "1",
    "SMSGW_OPERATOR_RETRIES": "1",
    "SMSGW_BREAKER_RESET_S": "600",  # and it stays open for the rest of the test
    "SMSGW_METRICS_TOKEN": "scrape-token-0123456789",
}
SCRAPER = {"Authorization": f"Bearer {SETTINGS['SMSGW_METRICS_TOKEN']}"}
Labels = tuple[tuple[str, str], ...]
Samples = Counter[tuple[str, Labels]]


def catalogue() -> dict[str, str]:
    rows = re.findall(r"^\| `(smsgw_[a-z_]+)` \| (\w+) \|",
                      (ROOT / "docs" / "observability.md").read_text(), re.MULTILINE)
    return dict(rows)


def scrape(*urls: str) -> Samples:
    """Every sample of these endpoints, summed over them by name and labels."""
    samples: Samples = Counter()
    for url in urls:
        response = httpx.get(url, timeout=10, headers=SCRAPER)
        assert response.status_code == 200, (url, response.text)
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] += sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples that carry these labels (others free)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def has(samples: Samples, name: str, **labels: str) -> bool:
    wanted = set(labels.items())
    return any(n == name and wanted <= set(ls) for n, ls in samples)


def start(make_gateway: GatewayFactory, mode: str) -> tuple[Gateway, list[str]]:
    """The gateway and the metrics URLs of its processes."""
    if mode != "split":
        gateway = make_gateway(OPERATORS, **SETTINGS)
        return gateway, [f"{gateway.url}/metrics"]
    gateway = make_gateway(OPERATORS, start=False, **SETTINGS)
    urls = [f"{gateway.url}/metrics"]
    gateway.start("api")
    for name in ("relay", "worker"):  # one port each: the env is read when a process starts
        port = free_port()
        gateway.env["SMSGW_METRICS_PORT"] = str(port)
        gateway.start(name)
        urls.append(f"http://127.0.0.1:{port}/metrics")
    wait_until(lambda: _answers(urls), timeout=30)
    return gateway, urls


def _answers(urls: list[str]) -> bool:
    try:
        return all(httpx.get(u, timeout=1, headers=SCRAPER).status_code == 200 for u in urls)
    except httpx.HTTPError:
        return False


def queue_names(gateway: Gateway) -> tuple[str, str]:
    if gateway.mode == "embedded":
        return "inprocess-express", "inprocess-normal"
    return gateway.env["SMSGW_EXPRESS_QUEUE"], gateway.env["SMSGW_NORMAL_QUEUE"]


def test_every_catalogued_metric_moves_with_a_send(
    make_gateway: GatewayFactory, mode: str, user_id: int
) -> None:
    gateway, urls = start(make_gateway, mode)
    before = scrape(*urls)
    for url in urls:
        for refused in (httpx.get(url, timeout=10), httpx.get(url, timeout=10, headers={
                "Authorization": SCRAPER["Authorization"][:-1]})):
            assert refused.status_code == 401, (url, refused.text)
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "smsgw_" not in refused.text

    gateway.top_up(user_id, 100)
    express = send(gateway, user_id, ["09120000001"], sms_type="express")  # opens A
    assert {r["status"] for r in gateway.wait_terminal(express["sms_identifier"], user_id)} \
        == {"done"}
    normal = send(gateway, user_id, ["09120000002", "09990000003"])  # A open; B refuses one
    assert sorted(r["status"] for r in gateway.wait_terminal(normal["sms_identifier"],
                                                             user_id)) == ["done", "failed"]
    # Telemetry is reported just after each commit: wait for the last one.
    after = wait_until(lambda: (s := scrape(*urls)) and total(
        s, "smsgw_ledger_transactions_total", type="refund") >= 1 and s, timeout=20)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    # every metric of the catalogue is there
    for name, kind in catalogue().items():
        if name.startswith("smsgw_smpp_"):
            continue  # only with an SMPP operator: tests/unit/test_smpp_metrics.py
        sample = f"{name}_count" if kind == "histogram" else name
        assert has(after, sample), f"{name} is missing in {mode}"

    # HTTP (the API's middleware)
    assert moved("smsgw_http_requests_total", path="/sms/send", status_code="200") == 2
    assert moved("smsgw_http_request_duration_seconds_count", path="/sms/send") == 2

    # SQL statements, by operation
    for operation in ("select", "insert", "update"):
        assert moved("smsgw_db_statement_duration_seconds_count", operation=operation) > 0

    # the outbox: both priorities published once, nothing failed or parked
    for priority in ("express", "normal"):
        assert moved("smsgw_outbox_published_total", priority=priority) == 1
        assert moved("smsgw_outbox_publish_failures_total", priority=priority) == 0
        assert moved("smsgw_outbox_parked_total", priority=priority) == 0
        assert has(after, "smsgw_outbox_backlog_events", priority=priority)
        assert has(after, "smsgw_outbox_oldest_due_age_seconds", priority=priority)

    # the bus: one message per queue, published and consumed
    for queue in queue_names(gateway):
        assert moved("smsgw_queue_published_total", queue=queue) == 1, queue
        assert moved("smsgw_queue_consumed_total", queue=queue) == 1, queue
        assert moved("smsgw_queue_redelivered_total", queue=queue) == 0, queue
        assert moved("smsgw_queue_dead_lettered_total", queue=queue) == 0, queue

    # operators: A failed twice then turned calls away; B delivered two, refused one
    sends = {(op, outcome): moved("smsgw_operator_sends_total", operator=op, outcome=outcome)
             for op in "AB" for outcome in ("ok", "transient", "permanent", "open")}
    assert sends == {
        ("A", "ok"): 0, ("A", "transient"): 2, ("A", "permanent"): 0, ("A", "open"): 2,
        ("B", "ok"): 2, ("B", "transient"): 0, ("B", "permanent"): 1, ("B", "open"): 0,
    }
    assert moved("smsgw_operator_send_duration_seconds_count", operator="B", outcome="ok") == 2
    assert total(after, "smsgw_operator_breaker_state", operator="A") == 2  # open
    assert total(after, "smsgw_operator_breaker_state", operator="B") == 0  # closed

    # money: a top-up, two charges (3 express + 2 normal units), one refund
    assert moved("smsgw_ledger_transactions_total", type="topup") == 1
    assert moved("smsgw_ledger_amount_units_total", type="topup") == 100
    assert moved("smsgw_ledger_transactions_total", type="charge") == 2
    assert moved("smsgw_ledger_amount_units_total", type="charge") == 5
    assert moved("smsgw_ledger_transactions_total", type="refund") == 1
    assert moved("smsgw_ledger_amount_units_total", type="refund") == 1

    # recipients and their accept-to-terminal time
    assert moved("smsgw_recipients_finished_total", type="express", status="done") == 1
    assert moved("smsgw_recipients_finished_total", type="normal", status="done") == 1
    assert moved("smsgw_recipients_finished_total", type="normal", status="failed") == 1
    assert moved("smsgw_accept_to_terminal_seconds_count", type="express") == 1
    assert moved("smsgw_accept_to_terminal_seconds_count", type="normal") == 2
    assert moved("smsgw_accept_to_terminal_seconds_bucket", type="normal", le="600.0") == 2

