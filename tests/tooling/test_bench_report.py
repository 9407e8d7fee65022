"""`make bench`'s arithmetic: figures from the scenarios' documents, targets, the Markdown page."""

from __future__ import annotations

from typing import Any

import pytest
from benchmarks import report

X = report.TIMES


def loadtest(*, ok: int, elapsed: float = 10.0, recipients: int = 1, sent: int | None = None,
             non_2xx: dict[str, int] | None = None, p99: float = 20.0,
             delivery: dict[str, Any] | None = None, duration: float = 10.0) -> dict[str, Any]:
    """A document as `smsgw loadtest --json` prints it."""
    return {
        "config": {"recipients": recipients, "duration": duration},
        "sent": ok + sum((non_2xx or {}).values()) if sent is None else sent,
        "ok": ok, "non_2xx": non_2xx or {}, "errors": {}, "elapsed_s": elapsed,
        "achieved_rps": ok / elapsed, "recipients_per_s": ok * recipients / elapsed,
        "latency_ms": {"p50": p99 / 4, "p90": p99 / 2, "p95": p99 / 1.5, "p99": p99,
                       "max": p99 * 2},
        "latency_from": "send",
        "delivery": delivery,
    }


def express_delivery(p50: float, p99: float) -> dict[str, Any]:
    stats = {"p50": p50, "p90": p99, "p95": p99, "p99": p99, "max": p99, "count": 100}
    return {"delivered": 100, "failed": 0, "unfinished": 0, "delivered_per_s": 5.0,
            "latency_ms": {"express": stats, "normal": None}}


def ok(**record: Any) -> dict[str, Any]:
    return {"status": "ok", "error": None, **record}


def full_run() -> dict[str, dict[str, Any]]:
    """Every scenario, every target met."""
    return {
        "reference": ok(result={"levels": [
            {"concurrency": 8, "tx_per_s": 4000.0, "latency_ms": {"p50": 2.0, "p99": 5.0},
             "client_cpu_share": 0.5},
            {"concurrency": 64, "tx_per_s": 6000.0, "latency_ms": {"p50": 9.0, "p99": 20.0},
             "client_cpu_share": 0.7, "box_busy_cores": 1.93},
        ], "best": {"concurrency": 64, "tx_per_s": 6000.0}}),
        "accept_spread": ok(loadtest=loadtest(ok=35_000)),
        "accept_hot": ok(loadtest=loadtest(ok=30_000)),
        "accept_100": ok(loadtest=loadtest(ok=2_500, recipients=100)),
        "accept_1000rps": ok(loadtest=loadtest(ok=9_990, p99=18.0)),
        "end_to_end": ok(loadtest=loadtest(
            ok=192_000, elapsed=60.0, duration=60.0,
            delivery={"delivered": 192_000, "failed": 0, "unfinished": 0,
                      "delivered_per_s": 3200.0, "latency_ms": {}}),
            cpu={"elapsed_s": 60.0, "machine_busy_cores": 1.9,
                 "cores": {"worker": 1.0, "api": 0.6, "mariadb": 0.3, "loadtest": 0.3}}),
        "express": ok(loadtest=loadtest(ok=1000, delivery=express_delivery(40.0, 90.0)),
                      backlog_recipients=100_500, normal_unfinished_at_end=60_000),
        "fairness": ok(
            loadtest=loadtest(ok=100, elapsed=10.0, delivery=normal_delivery(600.0, 900.0)),
            express=loadtest(ok=100, elapsed=10.0, delivery=express_delivery(60.0, 90.0)),
            operator_latency_ms=200, heavy_before_per_s=1200.0, heavy_during_per_s=1140.0,
            heavy_unfinished_at_end=5_000),
        "receipts_off": receipts_half(60_000, 1000.0, {
            "api": 30.0, "relay": 10.0, "worker": 30.0, "mariadb": 20.0, "rabbitmq": 2.0,
            "loadtest": 10.0, "operators": 5.0}),
        "receipts_on": receipts_half(60_000, 960.0, {
            "api": 35.7, "relay": 10.0, "worker": 41.4, "mariadb": 25.7, "rabbitmq": 2.0,
            "loadtest": 10.0, "operators": 6.0}, applied=57_000),
        "smpp_http": smpp_half(60_000, 1000.0, {
            "api": 30.0, "relay": 10.0, "worker": 30.0, "mariadb": 20.0, "rabbitmq": 2.0,
            "loadtest": 10.0, "operators": 5.0}),
        "smpp_smpp": smpp_half(60_000, 990.0, {
            "api": 30.0, "relay": 10.0, "worker": 33.0, "mariadb": 20.0, "rabbitmq": 2.0,
            "loadtest": 10.0, "operators": 3.0}, smpp=True),
        "webhooks_off": webhooks_half(60_000, 1000.0, {
            "api": 30.0, "relay": 10.0, "worker": 30.0, "mariadb": 20.0, "rabbitmq": 2.0,
            "loadtest": 10.0, "operators": 5.0}),
        "webhooks_on": webhooks_half(60_000, 900.0, {
            "api": 30.0, "relay": 10.0, "worker": 33.0, "mariadb": 26.0, "rabbitmq": 2.0,
            "webhooks": 24.0, "receiver": 1.8, "loadtest": 10.0, "operators": 5.0},
            events=60_000),
    }


def smpp_half(sms: int, per_s: float, seconds: dict[str, float], smpp: bool = False,
              ) -> dict[str, Any]:
    """A half of the smpp scenario as scenarios.py records it."""
    record = ok(
        protocol="smpp" if smpp else "http",
        loadtest=loadtest(ok=sms, elapsed=60.0, duration=60.0),
        delivery={"delivered": sms, "failed": 0, "unfinished": 0, "delivered_per_s": per_s},
        cpu={"elapsed_s": 62.0, "machine_busy_cores": 1.9,
             "cores": {g: s / 62.0 for g, s in seconds.items()}, "seconds": seconds},
        operators={"A": {"accepted": sms}, "B": {"accepted": 0}},
    )
    if smpp:
        record.update(
            smpp_window=10,
            smscs={"binds": 4, "bind_failures": 0, "submits": sms, "accepted": sms,
                   "duplicates": 0, "rejected": 0, "throttled": 0, "failed": 0,
                   "links_dropped": 0, "unanswered": 0, "unreadable": 0},
            gateway_smpp={"worker-express": {"binds": 2.0, "link_drops": 0.0, "throttled": 0.0},
                          "worker-normal": {"binds": 2.0, "link_drops": 1.0, "throttled": 3.0}},
        )
    return record


def receipts_half(sms: int, per_s: float, seconds: dict[str, float], applied: int = 0,
                  ) -> dict[str, Any]:
    """A half of the receipts scenario as scenarios.py records it."""
    record = ok(
        loadtest=loadtest(ok=sms, elapsed=60.0, duration=60.0),
        delivery={"delivered": sms, "failed": 0, "unfinished": 0, "delivered_per_s": per_s},
        cpu={"elapsed_s": 62.0, "machine_busy_cores": 1.9,
             "cores": {g: s / 62.0 for g, s in seconds.items()}, "seconds": seconds},
        receipts={"applied": applied, "by_status": {}, "applied_per_s": None},
        innodb={"innodb_deadlocks": 2 if applied else 0, "innodb_row_lock_waits": 30,
                "innodb_row_lock_time": 1_200},
    )
    if applied:
        record["receipts"] = {
            "applied": applied, "applied_per_s": 900.0, "last_after_delivery_s": 0.35,
            "by_status": {"delivered": applied - 3_000, "undelivered": 2_400, "expired": 600},
            "simulators": {"delivered": applied - 3_000, "undelivered": 2_400, "expired": 600,
                           "none": 3_000, "pending": 0, "refused": 0, "reported": applied},
            "gateway": {"api1": {"applied": applied - 10.0, "kept": 10.0, "duplicate": 0.0,
                                 "done_to_receipt_sum": 0.25 * (applied - 10),
                                 "done_to_receipt_count": applied - 10.0},
                        "worker-normal": {"applied": 10.0, "done_to_receipt_sum": 2.5,
                                          "done_to_receipt_count": 10.0},
                        "relay": {"error": "connection refused"}},
            "gateway_applied": applied,
        }
    return record


def webhooks_half(sms: int, per_s: float, seconds: dict[str, float], events: int = 0,
                  ) -> dict[str, Any]:
    """A half of the webhooks scenario as benchmarks/bench/webhooks.py records it."""
    record = ok(
        loadtest=loadtest(ok=sms, elapsed=60.0, duration=60.0),
        delivery={"delivered": sms, "failed": 0, "unfinished": 0, "delivered_per_s": per_s},
        cpu={"elapsed_s": 62.0, "machine_busy_cores": 1.9,
             "cores": {g: s / 62.0 for g, s in seconds.items()}, "seconds": seconds},
        webhooks={"settings": {"SMSGW_WEBHOOK_CONCURRENCY": 64,
                               "SMSGW_WEBHOOK_PER_CUSTOMER": 4, "receiver_ports": 16}},
    )
    if events:
        record["webhooks"].update(
            endpoints=5000, registered_in_s=30.0, settled_after_delivery_s=0.5,
            events={"written": events, "delivered": events, "pending": 0, "dead": 0,
                    "by_type": {"message.sent": events}, "delivered_per_s": 890.0,
                    "notified_per_s": 880.0,
                    "latency_ms": {"mean": 40.0, "p50": 30.0, "p99": 250.0, "max": 400.0},
                    "last_after_delivery_s": 0.3, "span_s": 67.4},
            attempts={"total": events, "failed": 0, "by_code": {"200": events}, "errors": {}},
            metrics={"delivered": float(events), "pending": 0.0, "dead": 0.0,
                     "db_count": events * 4.5, "db_sum": events * 0.003,
                     "db_select_count": events * 3.0, "db_update_count": events * 1.5},
            receiver={"requests": events, "unique": events, "duplicates": 0,
                      "missing_headers": 0, "kept": 600},
            verified={"checked": 600, "passed": 600, "failures": []},
        )
    return record


def normal_delivery(p99: float, worst: float) -> dict[str, Any]:
    stats = {"p50": p99 / 2, "p90": p99, "p95": p99, "p99": p99, "max": worst, "count": 100}
    return {"delivered": 100, "failed": 0, "unfinished": 0, "delivered_per_s": 10.0,
            "latency_ms": {"express": None, "normal": stats}}


def rows_by_figure(scenarios: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    figures = report.derive_figures(scenarios)
    return {row["figure"]: row for row in report.evaluate(figures, scenarios)}


def test_figures_are_derived_from_the_documents() -> None:
    figures = report.derive_figures(full_run())
    assert figures["reference_tx_per_s"] == 6000.0
    assert figures["accept_spread_rps"] == pytest.approx(3500.0)
    assert figures["accept_vs_reference"] == pytest.approx(3500 / 6000)
    assert figures["hot_vs_spread"] == pytest.approx(3000 / 3500)
    assert figures["accept_100_recipients_per_s"] == pytest.approx(25_000.0)
    assert figures["accept_1000_achieved_rps"] == pytest.approx(999.0)
    assert figures["accept_p99_at_1000_ms"] == 18.0
    assert figures["e2e_delivered_per_s"] == 3200.0
    assert figures["e2e_vs_reference"] == pytest.approx(3200 / 6000)
    # The API per accepted request, the rest per delivered SMS, the load generator not.
    assert figures["e2e_cpu_ms_per_sms"] == pytest.approx((1.0 + 0.6 + 0.3) / 3200 * 1000)
    assert figures["express_p50_ms"] == 40.0
    assert figures["express_p99_ms"] == 90.0
    assert figures["express_max_ms"] == 90.0
    assert figures["express_backlog_recipients"] == 100_500
    assert figures["fairness_light_p99_ms"] == 600.0
    assert figures["fairness_light_max_ms"] == 900.0
    assert figures["fairness_express_p99_ms"] == 90.0
    # The light customers took 10 recipients/s of the 1,200 the heavy one had alone.
    assert figures["fairness_heavy_share"] == pytest.approx(1140 / 1190)


def test_the_heavy_rate_alone_is_taken_before_and_after_when_both_ran() -> None:
    run = full_run()
    run["fairness"]["heavy_after_per_s"] = 1000.0
    figures = report.derive_figures(run)
    assert figures["fairness_heavy_alone_per_s"] == 1100.0
    assert figures["fairness_heavy_share"] == pytest.approx(1140 / 1090)
    run["fairness"]["heavy_after_per_s"] = None  # the backlog ran out: the window before only
    assert report.derive_figures(run)["fairness_heavy_alone_per_s"] == 1200.0


def test_fairness_needs_the_heavy_backlog_to_last() -> None:
    run = full_run()
    run["fairness"]["heavy_unfinished_at_end"] = 0
    row = rows_by_figure(run)["fairness_light_p99_ms"]
    assert row["met"] is False
    assert row["notes"] == ["invalid: the heavy backlog had drained before the light sends ended"]


def test_all_targets_met() -> None:
    rows = rows_by_figure(full_run())
    assert [row["figure"] for row in rows.values()] == [t.figure for t in report.TARGETS]
    assert all(row["met"] is True for row in rows.values()), rows
    assert all(row["bound"] is None for row in rows.values())


def test_throughput_counts_only_accepted_requests() -> None:
    run = full_run()
    run["accept_spread"] = ok(loadtest=loadtest(ok=20_000, non_2xx={"503": 20_000}))
    row = rows_by_figure(run)["accept_spread_rps"]
    assert row["measured"] == pytest.approx(2000.0)
    assert row["met"] is False
    assert row["notes"] == ["invalid: 20000 of 40000 requests failed (503: 20000)"]


def test_a_few_failures_are_noted_without_invalidating() -> None:
    run = full_run()
    run["accept_1000rps"] = ok(loadtest=loadtest(ok=9_990, non_2xx={"500": 3}, p99=18.0))
    row = rows_by_figure(run)["accept_p99_at_1000_ms"]
    assert row["met"] is True
    assert row["notes"] == ["3 of 9993 requests failed (500: 3)"]


def test_latency_target_needs_the_rate_it_is_set_at() -> None:
    run = full_run()
    run["accept_1000rps"] = ok(loadtest=loadtest(ok=6_000, p99=10.0))  # 600 req/s
    row = rows_by_figure(run)["accept_p99_at_1000_ms"]
    assert row["met"] is False
    assert "invalid: the open loop reached only 600 req/s" in row["notes"]


def test_a_missing_or_failed_scenario_is_not_measured() -> None:
    run = full_run()
    del run["reference"]
    run["express"] = {"status": "failed", "error": "loadtest express exited with 2"}
    rows = rows_by_figure(run)
    assert rows["accept_vs_reference"]["met"] is None
    assert rows["accept_vs_reference"]["measured"] is None
    assert rows["express_p99_ms"]["met"] is None
    assert rows["express_p99_ms"]["notes"] == [
        "scenario express failed: loadtest express exited with 2"]
    assert rows["accept_spread_rps"]["met"] is True  # the others still count


def test_express_caveats() -> None:
    run = full_run()
    run["express"]["backlog_recipients"] = 5_000
    run["express"]["normal_unfinished_at_end"] = 0
    row = rows_by_figure(run)["express_p99_ms"]
    assert row["met"] is False  # 90 ms, but not behind a backlog that was still there
    assert row["notes"] == [
        "behind 5,000 normal recipients, not 100,000",
        "invalid: the normal backlog had drained before the express run ended",
    ]


def test_end_to_end_caveats() -> None:
    run = full_run()
    run["end_to_end"] = ok(loadtest=loadtest(
        ok=2_400, elapsed=8.0, duration=8.0,
        delivery={"delivered": 2_390, "failed": 4, "unfinished": 6, "delivered_per_s": 250.0}))
    row = rows_by_figure(run)["e2e_vs_reference"]
    assert row["met"] is False
    assert row["notes"] == ["ran 8 s, not 60 s", "4 recipients failed", "6 recipients unfinished"]


def test_bound_of_a_missed_target_names_the_busy_processes() -> None:
    run = full_run()
    run["accept_spread"] = ok(
        loadtest=loadtest(ok=20_000),
        cpu={"elapsed_s": 10.0, "machine_busy_cores": 1.96,
             "cores": {"api": 1.1, "mariadb": 0.5, "loadtest": 0.34, "rabbitmq": 0.0,
                       "other": 0.02}},
    )
    run["reference"]["result"]["best"]["tx_per_s"] = 2500.0
    row = rows_by_figure(run)["accept_spread_rps"]
    assert row["met"] is False
    assert row["bound"].startswith("the framework-free reference itself reaches only 2,500 tx/s")
    assert "CPU-bound: box 98% busy of 2 cores (api 1.10, mariadb 0.50, loadtest 0.34, " \
           "other 0.02 cores)" in row["bound"]


def test_bound_when_the_box_is_not_busy() -> None:
    run = full_run()
    run["express"]["loadtest"]["delivery"] = express_delivery(300.0, 900.0)
    run["express"]["cpu"] = {"elapsed_s": 20.0, "machine_busy_cores": 0.8,
                             "cores": {"worker": 0.5, "relay": 0.2}}
    row = rows_by_figure(run)["express_p99_ms"]
    assert row["met"] is False
    assert "not CPU-bound (box 40% busy of 2 cores (worker 0.50, relay 0.20 cores))" in row["bound"]


def test_a_latency_bound_names_the_wait_for_a_core() -> None:
    run = full_run()
    run["express"]["loadtest"]["delivery"] = express_delivery(300.0, 900.0)
    run["express"]["cpu"] = {"elapsed_s": 20.0, "machine_busy_cores": 1.98,
                             "cores": {"worker": 0.5, "mariadb": 0.3, "relay": 0.004},
                             "waiting_cores": {"worker": 1.0, "mariadb": 2.25, "relay": 0.1}}
    row = rows_by_figure(run)["express_p99_ms"]
    assert ("waiting for a core: each process's threads waited on the run queue this many ms "
            "for every ms they ran: mariadb 7.5, worker 2.0") in row["bound"]
    # A throughput's bound is its CPU budget, not the queue.
    assert "waiting for a core" not in (rows_by_figure(run)["accept_spread_rps"]["bound"] or "")


def test_markdown_table() -> None:
    run = full_run()
    run["accept_hot"] = ok(loadtest=loadtest(ok=14_000))  # 0.4 of spread
    figures = report.derive_figures(run)
    results = {
        "date": "2026-11-26", "command": "make bench", "started_at": "t0", "finished_at": "t1",
        "quick": False,
        "machine": {"cpus": 2, "cpu_model": "AMD EPYC", "python": "3.11.2",
                    "mariadb_version": "10.11", "innodb_flush_log_at_trx_commit": 1,
                    "rabbitmq_version": "3.10.8"},
        "git": {"commit": "0123456789abcdef", "dirty": True},
        "scenarios": run, "figures": figures, "targets": report.evaluate(figures, run),
        "settings": {"SMSGW_WORKERS": 8},
    }
    page = report.markdown(results)
    assert page.startswith("# smsgw benchmark, 2026-11-26\n")
    assert "Produced by `make bench`" in page
    assert "commit 0123456789ab with uncommitted changes" in page
    assert "| figure | measured | target | met |" in page
    assert ("| accept, 1 recipient, spread over 5,000 customers | 3,500 req/s | ≥ 3,000 req/s "
            "| yes |") in page
    assert f"| hot customer (90 % of requests) ÷ spread | 0.40{X} | ≥ 0.80{X} | **no** |" in page
    assert "| accept, 100 recipients per request | 25,000 recipients/s | ≥ 20,000 recipients/s" \
           in page
    assert ("| express p99 accept→terminal behind 100,000 normal, normal sends arriving | 90.0 ms "
            "(60,000 normal recipients still queued when it ended) | ≤ 100.0 ms | yes |") in page
    assert "## What bounds the figures that miss their target" in page
    assert "- **hot customer (90 % of requests) ÷ spread**: 90 % of the transactions" in page
    assert "| 8 | 4,000 | 2.0 ms | 5.0 ms | 50% | — |" in page  # the reference sweep
    assert "| 64 | 6,000 | 9.0 ms | 20.0 ms | 70% | 1.93 cores |" in page
    assert "`SMSGW_WORKERS=8`" in page
    assert "Quick run" not in page


def test_markdown_of_a_failed_scenario_and_a_quick_run() -> None:
    run = {"accept_spread": {"status": "failed", "error": "smsgw api 1 exited with 2",
                             "description": "closed loop"}}
    figures = report.derive_figures(run)
    page = report.markdown({"quick": True, "scenarios": run, "figures": figures,
                            "targets": report.evaluate(figures, run)})
    assert "**Quick run**" in page
    assert "| accept_spread | closed loop | failed: smsgw api 1 exited with 2 |" in page
    assert f"| hot customer (90 % of requests) ÷ spread | — | ≥ 0.80{X} | not measured |" in page
    assert ("| accept ÷ reference limit (same run) | — (scenario accept_spread failed: smsgw api 1 "
            f"exited with 2) | ≥ 0.45{X} | not measured |") in page


@pytest.mark.parametrize(("value", "unit", "text"), [
    (None, "req/s", "—"), (3120.4, "req/s", "3,120 req/s"), (0.456, "ratio", f"0.46{X}"),
    (12.345, "ms", "12.3 ms"), (99.0, "", "99"),
])
def test_fmt(value: float | None, unit: str, text: str) -> None:
    assert report.fmt(value, unit) == text


def test_the_reference_limit_is_the_better_of_one_and_grouped_requests() -> None:
    run = full_run()
    run["reference_grouped"] = ok(result={
        "config": {"group": 32},
        "levels": [{"concurrency": 4, "tx_per_s": 9000.0, "latency_ms": {"p50": 20.0}}],
        "best": {"concurrency": 4, "tx_per_s": 9000.0},
    })
    figures = report.derive_figures(run)
    assert figures["reference_tx_per_s"] == 6000.0
    assert figures["reference_grouped_tx_per_s"] == 9000.0
    assert figures["reference_limit_tx_per_s"] == 9000.0
    assert figures["accept_vs_reference"] == pytest.approx(3500 / 9000)
    page = report.markdown({"scenarios": run, "figures": figures,
                            "targets": report.evaluate(figures, run)})
    assert "32 request(s) per transaction" in page


def test_a_missed_throughput_names_its_cpu_budget() -> None:
    run = full_run()
    run["accept_spread"]["loadtest"] = loadtest(ok=10_000)  # 1,000 req/s
    run["accept_spread"]["cpu"] = {"elapsed_s": 10.0, "machine_busy_cores": 1.9,
                                   "cores": {"api": 1.4, "mariadb": 0.3, "loadtest": 0.2}}
    figures = report.derive_figures(run)
    [row] = [r for r in report.evaluate(figures, run) if r["figure"] == "accept_spread_rps"]
    assert "CPU per request: api 1.40, mariadb 0.30, loadtest 0.20 ms, 1.90 ms in all" in (
        row["bound"])
    assert "2 cores carry at most 1,053 requests/s" in row["bound"]


def test_end_to_end_budget_counts_the_api_per_accepted_request() -> None:
    run = full_run()
    run["end_to_end"]["loadtest"] = loadtest(
        ok=24_000, elapsed=60.0, duration=60.0,
        delivery={"delivered": 12_000, "failed": 0, "unfinished": 0,
                  "delivered_per_s": 200.0, "latency_ms": {}})
    run["end_to_end"]["cpu"] = {"elapsed_s": 60.0, "machine_busy_cores": 1.9,
                                "cores": {"worker": 0.6, "api": 0.4}}
    figures = report.derive_figures(run)
    rows = {r["figure"]: r for r in report.evaluate(figures, run)}
    # the API accepted 400/s: 1 ms each; the worker delivered 200/s: 3 ms each
    assert "CPU per delivered SMS: worker 3.00, api 1.00 ms, 4.00 ms in all" in (
        rows["e2e_vs_reference"]["bound"])
    assert rows["e2e_cpu_ms_per_sms"]["measured"] == pytest.approx(4.0)
    assert rows["e2e_cpu_ms_per_sms"]["met"] is False


def test_receipts_figures() -> None:
    figures = report.derive_figures(full_run())
    assert figures["receipts_off_delivered_per_s"] == 1000.0
    assert figures["receipts_on_delivered_per_s"] == 960.0
    assert figures["receipts_on_vs_off"] == pytest.approx(0.96)
    assert figures["receipts_applied"] == 57_000
    assert figures["receipts_applied_per_s"] == 900.0
    assert figures["receipts_last_after_delivery_ms"] == pytest.approx(350.0)
    assert figures["receipts_done_to_receipt_ms"] == pytest.approx(250.0)
    # The send path: the gateway's groups (not the load generator, not the simulators),
    # the API per accepted request, the rest per delivered SMS.
    assert figures["receipts_send_cpu_ms_per_sms"] == pytest.approx(92.0 / 60_000 * 1000)
    # The on half's extra CPU over the off half's, per receipt applied.
    assert figures["receipts_api_cpu_ms_per_receipt"] == pytest.approx(0.1)
    assert figures["receipts_worker_cpu_ms_per_receipt"] == pytest.approx(0.2)
    assert figures["receipts_mariadb_cpu_ms_per_receipt"] == pytest.approx(0.1)
    assert figures["receipts_cpu_ms_per_receipt"] == pytest.approx(0.4)


def test_receipt_cpu_counts_what_the_on_half_carried() -> None:
    """A half that got fewer SMS through is charged the send path for those only."""
    run = full_run()
    run["receipts_on"] = receipts_half(54_000, 860.0, {
        "api": 32.4, "relay": 9.0, "worker": 27.0, "mariadb": 18.0, "rabbitmq": 1.8},
        applied=54_000)
    figures = report.derive_figures(run)
    assert figures["receipts_api_cpu_ms_per_receipt"] == pytest.approx(0.1)
    assert figures["receipts_cpu_ms_per_receipt"] == pytest.approx(0.1)
    row = rows_by_figure(run)["receipts_on_vs_off"]
    assert row["met"] is True
    assert row["notes"] == ["accepted 60,000 requests off, 54,000 on: the box could not take "
                            "the same load in both"]


def test_receipts_must_all_be_applied() -> None:
    run = full_run()
    receipts = run["receipts_on"]["receipts"]
    receipts["simulators"]["pending"] = 40
    receipts["simulators"]["reported"] = 57_100
    receipts["gateway_applied"] = 56_990
    row = rows_by_figure(run)["receipts_on_vs_off"]
    assert row["measured"] == pytest.approx(0.96)
    assert row["met"] is False
    assert row["notes"] == [
        "invalid: 40 receipts still owed by the simulators when the bench stopped waiting",
        "invalid: the simulators had 57,100 receipts taken, 57,000 recipients moved by one",
        "smsgw_receipts_total counts 56,990 applied, the table 57,000",
    ]


def test_receipts_caveats_of_either_half() -> None:
    run = full_run()
    run["receipts_off"]["delivery"]["unfinished"] = 7
    run["receipts_on"]["loadtest"] = loadtest(ok=60_000, elapsed=8.0, duration=8.0,
                                              non_2xx={"503": 2})
    row = rows_by_figure(run)["receipts_on_vs_off"]
    assert row["met"] is False
    assert row["notes"] == ["2 of 60002 requests failed (503: 2)", "ran 8 s, not 60 s",
                            "invalid: receipts off: 7 recipients unfinished"]
    run = full_run()
    run["receipts_off"] = {"status": "failed", "error": "smsgw api 1 exited with 2"}
    row = rows_by_figure(run)["receipts_on_vs_off"]
    assert row["met"] is None
    assert row["notes"] == ["scenario receipts_off failed: smsgw api 1 exited with 2"]
    assert report.derive_figures(run)["receipts_cpu_ms_per_receipt"] is None


def test_a_missed_receipts_ratio_names_what_receipts_cost() -> None:
    run = full_run()
    run["receipts_on"]["delivery"]["delivered_per_s"] = 700.0
    row = rows_by_figure(run)["receipts_on_vs_off"]
    assert row["met"] is False
    assert row["bound"].startswith(
        "a receipt applied took 0.40 ms of CPU over the send path (worker 0.20, api 0.10, "
        "mariadb 0.10 ms), a delivered SMS 1.53 ms without receipts; at 900 receipts/s that "
        "is 0.36 cores")
    assert "CPU-bound: box 95% busy of 2 cores" in row["bound"]


def test_markdown_of_the_receipts_halves() -> None:
    run = full_run()
    figures = report.derive_figures(run)
    page = report.markdown({"scenarios": run, "figures": figures,
                            "targets": report.evaluate(figures, run)})
    assert ("| end to end with receipts (85 % delivered, 8 % undelivered, 2 % expired, 5 % none) "
            f"÷ without (same load, same run): delivered | 0.96{X} | ≥ 0.85{X} | yes |") in page
    assert "| receipts applied, from the first applied to the last | 900 receipts/s | | |" in page
    assert "| receipts on: their extra CPU per receipt applied, the same processes | 0.40 ms |" \
        in page
    assert "| | receipts off | receipts on |" in page
    assert "| delivered/s | 1,000 delivered/s | 960 delivered/s |" in page
    assert ("| receipts applied | — | 57,000 (54,000 delivered, 2,400 undelivered, 600 expired) "
            "of 57,000 the simulators had taken; 10 kept for their answer, 0 duplicates |") in page
    assert "| MariaDB deadlocks, row lock waits (server-wide) | 0, 30 (1,200 ms) | 2, 30 " \
           "(1,200 ms) |" in page
    assert ("| extra CPU per receipt applied | — | api 0.10, relay 0.00, worker 0.20, mariadb "
            "0.10, rabbitmq 0.00 ms, 0.40 ms in all |") in page


def test_receipts_read_from_the_table_and_the_metrics() -> None:
    from datetime import datetime, timedelta

    from benchmarks.bench import receipts

    def at(seconds: float) -> datetime:
        return datetime(2026, 12, 7, 12, 0, 0) + timedelta(seconds=seconds)

    outcome = receipts.summarize({
        # status: count, first created, first updated, last updated. With receipts on the
        # end of delivery is the last recipient still DONE (never reported).
        "DONE": (50, at(0.1), at(0.2), at(10.0)),
        "DELIVERED": (850, at(0.0), at(0.7), at(10.2)),
        "UNDELIVERED": (80, at(0.0), at(0.8), at(10.1)),
        "EXPIRED": (20, at(0.0), at(0.9), at(9.0)),
    })
    assert outcome["delivery"] == {"delivered": 1000, "failed": 0, "unfinished": 0,
                                   "delivered_per_s": 100.0, "span_s": 10.0}
    assert outcome["receipts"] == {
        "applied": 950, "by_status": {"delivered": 850, "undelivered": 80, "expired": 20},
        "applied_per_s": 100.0, "span_s": 9.5, "last_after_delivery_s": 0.2}
    text = "\n".join([
        "# HELP smsgw_receipts_total Operators' delivery receipts",
        "# TYPE smsgw_receipts_total counter",
        'smsgw_receipts_total{operator="A",status="delivered"} 85.0',
        'smsgw_receipts_total{operator="B",status="delivered"} 5.0',
        'smsgw_receipts_total{operator="A",status="expired"} 2.0',
        'smsgw_receipts_total{operator="A",status="kept"} 3.0',
        'smsgw_receipts_created{operator="A",status="kept"} 1.7e+09',
        'smsgw_done_to_receipt_seconds_sum{operator="A"} 18.5',
        'smsgw_done_to_receipt_seconds_count{operator="A"} 87.0',
    ])
    assert receipts.receipt_metrics(text) == {
        "delivered": 90.0, "expired": 2.0, "kept": 3.0, "applied": 92.0,
        "done_to_receipt_sum": 18.5, "done_to_receipt_count": 87.0}
    assert receipts.simulator_receipts({
        "A": {"receipts": {"delivered": 9, "undelivered": 1, "none": 1, "pending": 2}},
        "B": {"error": "timed out"},
    }) == {"delivered": 9, "undelivered": 1, "expired": 0, "none": 1, "pending": 3,
           "refused": 0, "reported": 10}


def test_smpp_figures() -> None:
    figures = report.derive_figures(full_run())
    assert figures["smpp_http_delivered_per_s"] == 1000.0
    assert figures["smpp_delivered_per_s"] == 990.0
    assert figures["smpp_vs_http_delivered"] == pytest.approx(0.99)
    # The gateway's groups (not the load generator, not the simulators), the API per
    # accepted request, the rest per delivered SMS.
    assert figures["smpp_http_cpu_ms_per_sms"] == pytest.approx(92.0 / 60_000 * 1000)
    assert figures["smpp_cpu_ms_per_sms"] == pytest.approx(95.0 / 60_000 * 1000)
    assert figures["smpp_vs_http_cpu"] == pytest.approx(95 / 92)
    assert figures["smpp_http_worker_cpu_ms_per_sms"] == pytest.approx(0.5)
    assert figures["smpp_worker_cpu_ms_per_sms"] == pytest.approx(0.55)
    row = rows_by_figure(full_run())["smpp_vs_http_cpu"]
    assert (row["met"], row["notes"], row["bound"]) == (True, [], None)


def test_smpp_caveats_of_either_half() -> None:
    run = full_run()
    run["smpp_http"]["delivery"]["unfinished"] = 5
    run["smpp_smpp"]["delivery"]["failed"] = 2
    run["smpp_smpp"]["loadtest"] = loadtest(ok=50_000, elapsed=8.0, duration=8.0)
    # Their duplicates are the same number and text by chance: no caveat.
    run["smpp_smpp"]["smscs"].update(accepted=40_000, links_dropped=1, throttled=12,
                                     duplicates=21)
    row = rows_by_figure(run)["smpp_vs_http_cpu"]
    assert row["met"] is False
    assert row["notes"] == [
        "ran 8 s, not 60 s",
        "invalid: over HTTP: 5 recipients unfinished",
        "over SMPP: 2 recipients failed",
        "accepted 60,000 requests over HTTP, 50,000 over SMPP: the box could not take the "
        "same load in both",
        "invalid: the SMSCs took 40,000 submit_sm, 60,000 recipients delivered",
        "SMSCs: 1 links dropped", "SMSCs: 12 throttled",
    ]
    run = full_run()
    run["smpp_http"] = {"status": "failed", "error": "operator-sim A exited with 2"}
    row = rows_by_figure(run)["smpp_vs_http_cpu"]
    assert (row["met"], row["measured"]) == (None, None)
    assert row["notes"] == ["scenario smpp_http failed: operator-sim A exited with 2"]


def test_a_missed_smpp_ratio_names_where_smpp_costs_more() -> None:
    run = full_run()
    run["smpp_smpp"] = smpp_half(60_000, 900.0, {
        "api": 30.0, "relay": 10.0, "worker": 45.0, "mariadb": 21.2, "rabbitmq": 2.0},
        smpp=True)
    row = rows_by_figure(run)["smpp_vs_http_cpu"]
    assert row["measured"] == pytest.approx(108.2 / 92)
    assert row["met"] is False
    assert row["bound"].startswith(
        "a delivered SMS took 1.80 ms of CPU over SMPP, 1.53 ms over HTTP (worker +0.25, "
        "mariadb +0.02 ms)")
    assert "CPU-bound: box 95% busy of 2 cores" in row["bound"]


def test_markdown_of_the_smpp_halves() -> None:
    run = full_run()
    figures = report.derive_figures(run)
    page = report.markdown({"scenarios": run, "figures": figures,
                            "targets": report.evaluate(figures, run)})
    assert ("| end to end over SMPP (2 simulated SMSCs, windows of 10) ÷ over HTTP (same load, "
            f"same run): CPU per delivered SMS | 1.03{X} | ≤ 1.10{X} | yes |") in page
    assert f"| over SMPP ÷ over HTTP: delivered | 0.99{X} | | |" in page
    assert "| | HTTP operators | SMPP operators |" in page
    assert "window 10" in page
    assert "| delivered/s | 1,000 delivered/s | 990 delivered/s |" in page
    assert ("| CPU per delivered SMS (api per accepted request) | api 0.50, relay 0.17, worker "
            "0.50, mariadb 0.33, rabbitmq 0.03 ms, 1.53 ms in all | api 0.50, relay 0.17, "
            "worker 0.55, mariadb 0.33, rabbitmq 0.03 ms, 1.58 ms in all |") in page
    assert ("| the operator simulators | 60,000 taken | 60,000 taken; 4 binds, 0 duplicates, "
            "0 throttled, 0 failed, 0 links dropped |") in page
    assert ("| the workers' smsgw_smpp_* | — | 4 bound at the end, 1 link drops, 3 throttled |"
            in page)


def test_smpp_read_from_the_simulators_and_the_metrics() -> None:
    from benchmarks.bench import smpp

    assert smpp.operators_url({"A": "127.0.0.1:2775", "B": "127.0.0.1:2776"}, 10) == (
        "A=smpp://smsgw:smsgw@127.0.0.1:2775?window=10,"
        "B=smpp://smsgw:smsgw@127.0.0.1:2776?window=10")
    counts = smpp.smsc_counts({"A": {"binds": 2, "accepted": 9, "links_dropped": 1},
                               "B": {"binds": 2, "accepted": 1},
                               "C": {"error": "timed out"}})
    assert (counts["binds"], counts["accepted"], counts["links_dropped"], counts["unreadable"],
            counts["throttled"]) == (4, 10, 1, 1, 0)
    text = "\n".join([
        "# TYPE smsgw_smpp_binds gauge",
        'smsgw_smpp_binds{operator="A"} 1.0',
        'smsgw_smpp_binds{operator="B"} 1.0',
        'smsgw_smpp_link_drops_total{operator="A"} 2.0',
        'smsgw_smpp_throttled_total{operator="B"} 5.0',
        'smsgw_smpp_deliver_sm_total{operator="A",outcome="mo"} 3.0',
        'smsgw_operator_sends_total{operator="A",outcome="ok"} 70.0',
    ])
    assert smpp.smpp_metrics(text) == {"binds": 2.0, "link_drops": 2.0, "throttled": 5.0,
                                       "deliver_sm_mo": 3.0}


def test_webhooks_figures() -> None:
    figures = report.derive_figures(full_run())
    assert figures["webhooks_off_delivered_per_s"] == 1000.0
    assert figures["webhooks_on_delivered_per_s"] == 900.0
    assert figures["webhooks_on_vs_off"] == pytest.approx(0.9)
    assert figures["webhooks_events_delivered"] == 60_000
    assert figures["webhooks_events_per_s"] == 890.0
    assert figures["webhooks_on_notified_per_s"] == 880.0
    assert figures["webhooks_notified_vs_off"] == pytest.approx(0.88)
    assert figures["webhooks_event_p50_ms"] == 30.0
    assert figures["webhooks_event_p99_ms"] == 250.0
    assert figures["webhooks_last_after_delivery_ms"] == pytest.approx(300.0)
    assert figures["webhooks_failed_attempts"] == 0
    assert figures["webhooks_statements_per_event"] == pytest.approx(4.5)
    assert figures["webhooks_db_ms_per_event"] == pytest.approx(3.0)
    # The webhooks process's own CPU per event, and the receiver's (not the gateway's).
    assert figures["webhooks_cpu_ms_per_event"] == pytest.approx(0.4)
    assert figures["webhooks_receiver_cpu_ms_per_event"] == pytest.approx(0.03)
    # Per delivered SMS: the gateway's groups, and with webhooks on the webhooks process.
    assert figures["webhooks_off_cpu_ms_per_sms"] == pytest.approx(92.0 / 60_000 * 1000)
    assert figures["webhooks_on_cpu_ms_per_sms"] == pytest.approx(125.0 / 60_000 * 1000)
    # The on half's extra CPU over the off half's, per event delivered: the webhooks
    # process 0.4, the worker (events written with the outcome) 0.05, MariaDB 0.1.
    assert figures["webhooks_extra_cpu_ms_per_event"] == pytest.approx(0.55)
    row = rows_by_figure(full_run())["webhooks_on_vs_off"]
    assert (row["met"], row["notes"], row["bound"]) == (True, [], None)


def test_webhook_events_must_all_be_written_delivered_and_verified() -> None:
    run = full_run()
    hooks = run["webhooks_on"]["webhooks"]
    hooks["events"].update(written=59_990, delivered=59_000, pending=980, dead=10)
    hooks["attempts"].update(total=59_100, failed=100,
                             by_code={"200": 59_000, "500": 60, "none": 40})
    hooks["receiver"].update(unique=59_001, duplicates=3)
    hooks["verified"] = {"checked": 600, "passed": 599,
                         "failures": ["/c/7: no signature matches its secret"]}
    row = rows_by_figure(run)["webhooks_on_vs_off"]
    assert row["measured"] == pytest.approx(0.9)
    assert row["met"] is False
    assert row["notes"] == [
        "invalid: 59,990 webhook events written for 60,000 recipients delivered or failed",
        "invalid: 980 webhook events still pending when the bench stopped waiting",
        "invalid: 10 webhook events dead",
        "100 webhook attempts failed (500: 60, none: 40)",
        "the receiver counted 59,001 distinct events, the table 59,000 delivered",
        "the receiver got 3 events twice",
        "invalid: 599 of 600 sampled deliveries verified (/c/7: no signature matches its "
        "secret)",
    ]


def test_webhooks_that_fall_behind_make_the_ratio_invalid() -> None:
    """Events delivered well below the SMS rate were left for after the SMS: the SMS
    rate of the on half does not carry their cost."""
    run = full_run()
    run["webhooks_on"]["webhooks"]["events"].update(delivered_per_s=300.0,
                                                    last_after_delivery_s=120.5)
    row = rows_by_figure(run)["webhooks_on_vs_off"]
    assert row["met"] is False
    assert row["notes"] == [
        "invalid: the webhooks process did not keep up (300 events/s against 900 SMS "
        "delivered/s, the last event 120.5 s after the last SMS): its backlog, not the SMS "
        "path, carried the cost; see the events' rate"]
    assert row["bound"].startswith("an event delivered took 0.55 ms of CPU")


def test_webhooks_caveats_of_either_half() -> None:
    run = full_run()
    run["webhooks_off"]["delivery"]["unfinished"] = 4
    run["webhooks_on"]["delivery"]["failed"] = 2
    run["webhooks_on"]["loadtest"] = loadtest(ok=50_000, elapsed=8.0, duration=8.0)
    run["webhooks_on"]["webhooks"]["events"]["written"] = 60_002
    row = rows_by_figure(run)["webhooks_on_vs_off"]
    assert row["notes"] == [
        "ran 8 s, not 60 s",
        "invalid: webhooks off: 4 recipients unfinished",
        "webhooks on: 2 recipients failed",
        "accepted 60,000 requests off, 50,000 on: the box could not take the same load in both",
    ]
    run = full_run()
    run["webhooks_off"] = {"status": "failed", "error": "smsgw relay exited with 2"}
    row = rows_by_figure(run)["webhooks_on_vs_off"]
    assert (row["met"], row["measured"]) == (None, None)
    assert row["notes"] == ["scenario webhooks_off failed: smsgw relay exited with 2"]
    figures = report.derive_figures(run)
    assert figures["webhooks_extra_cpu_ms_per_event"] is None
    assert figures["webhooks_cpu_ms_per_event"] == pytest.approx(0.4)  # the on half alone


def test_a_missed_webhooks_ratio_names_what_webhooks_cost() -> None:
    run = full_run()
    run["webhooks_on"]["delivery"]["delivered_per_s"] = 700.0
    run["webhooks_on"]["webhooks"]["events"]["delivered_per_s"] = 690.0
    row = rows_by_figure(run)["webhooks_on_vs_off"]
    assert row["measured"] == pytest.approx(0.7)
    assert (row["met"], row["notes"]) == (False, [])
    assert row["bound"].startswith(
        "an event delivered took 0.55 ms of CPU over the send path (webhooks 0.40, mariadb "
        "0.10, worker 0.05 ms), a delivered SMS 1.53 ms without webhooks; at 690 events/s "
        "that is 0.38 cores; per event the webhooks process waited 3.00 ms on 4.5 SQL "
        "statements and ran 0.40 ms of CPU (its loop waits for each claim and each record; "
        "the attempts alone run side by side): at most 294 events/s were they never "
        "overlapped")
    assert "CPU-bound: box 95% busy of 2 cores" in row["bound"]


def test_markdown_of_the_webhooks_halves() -> None:
    run = full_run()
    figures = report.derive_figures(run)
    page = report.markdown({"scenarios": run, "figures": figures,
                            "targets": report.evaluate(figures, run)})
    assert ("| end to end with a status webhook for every recipient (every customer's "
            "endpoint, every event type, delivered to a local receiver) ÷ without (same "
            f"load, same run): delivered | 0.90{X} | ≥ 0.80{X} | yes |") in page
    assert ("| webhook events delivered, from the first written to the last delivered | "
            "890 events/s | | |") in page
    assert "| the smsgw webhooks process's CPU per event delivered | 0.40 ms | | |" in page
    assert "| webhook attempts that failed (no 2xx) | 0 attempts | | |" in page
    assert "| | webhooks off | webhooks on |" in page
    assert "SMSGW_WEBHOOK_CONCURRENCY=64, SMSGW_WEBHOOK_PER_CUSTOMER=4, the receiver on 16 " \
           "ports" in page
    assert "| delivered/s | 1,000 delivered/s | 900 delivered/s |" in page
    assert "| endpoints | none | 5,000, registered in 30.0 s (before the load) |" in page
    assert ("| webhook events | — | 60,000 written (60,000 message.sent); 60,000 delivered, "
            "0 pending, 0 dead |") in page
    assert ("| written → delivering attempt | — | mean 40.0 ms, p50 30.0 ms, p99 250.0 ms, "
            "max 400.0 ms; the last 300.0 ms after the last SMS |") in page
    assert "| attempts | — | 60,000 (60,000 200), 0 failed |" in page
    assert ("| the webhooks process's SQL | — | 4.50 statements per event (select 3.00, "
            "update 1.50), 3.00 ms of round trips |") in page
    assert "| the webhooks process's SQL statements per event delivered | 4.5 statements |" \
        in page
    assert ("| the receiver | — | 60,000 requests, 60,000 distinct events, 0 twice, 0 unsigned;"
            " signatures of 600 sampled verified: 600 passed |") in page
    assert ("| CPU per delivered SMS (api per accepted request) | api 0.50, relay 0.17, worker "
            "0.50, mariadb 0.33, rabbitmq 0.03, webhooks 0.00 ms, 1.53 ms in all | api 0.50, "
            "relay 0.17, worker 0.55, mariadb 0.43, rabbitmq 0.03, webhooks 0.40 ms, 2.08 ms "
            "in all |") in page
    assert ("| extra CPU per event delivered | — | api 0.00, relay 0.00, worker 0.05, mariadb "
            "0.10, rabbitmq 0.00, webhooks 0.40 ms, 0.55 ms in all |") in page
