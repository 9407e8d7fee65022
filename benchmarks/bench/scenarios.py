"""The scenarios of `make bench`, each measured in processes of its own (see run.py)."""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from benchmarks.bench import receipts as rx
from benchmarks.bench import smpp as sm
from benchmarks.bench import webhooks as wh
from benchmarks.bench.cpu import CpuSample
from benchmarks.bench.gateway import Gateway
from benchmarks.bench.plan import USERS, Plan
from benchmarks.bench.processes import Processes, ScenarioError, get_json, tail, wait_until
from benchmarks.bench.recorder import Recorder
from benchmarks.harness.net import free_port
from benchmarks.harness.processes import ROOT, smsgw


class Scenarios:
    """reference, accept, end_to_end, express, fairness, receipts, smpp and webhooks:
    what each starts, loads and records."""

    def __init__(self, gateway: Gateway, plan: Plan, recorder: Recorder) -> None:
        self.gateway, self.plan, self.recorder = gateway, plan, recorder
        self.services = gateway.services

    # -- the load

    def loadtest(self, name: str, urls: list[str], *, rps: float, duration: float,
                 concurrency: int, recipients: int = 1, hot_share: float = 0.0,
                 express_ratio: float = 0.0, wait_delivery: bool = False,
                 users: int = USERS, first_user: int = 1, seed: int | None = None
                 ) -> dict[str, Any]:
        argv = smsgw("loadtest", *[a for u in urls for a in ("--url", u)],
                     "--rps", str(rps), "--duration", str(duration),
                     "--concurrency", str(concurrency), "--users", str(users),
                     "--first-user", str(first_user), "--hot-share", str(hot_share),
                     "--recipients", str(recipients), "--express-ratio", str(express_ratio),
                     "--json")
        if seed is not None:
            argv += ["--seed", str(seed)]
        if wait_delivery:
            argv += ["--wait-delivery", "--delivery-timeout", str(self.plan.delivery_timeout_s)]
        logdir = self.gateway.logdir
        out, err = logdir / f"loadtest.{name}.json", logdir / f"loadtest.{name}.err"
        timeout = duration + (self.plan.delivery_timeout_s if wait_delivery else 0) + 120
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            try:
                done = subprocess.run(argv, stdout=stdout, stderr=stderr, cwd=ROOT,
                                      env=self.gateway.env("loadtest"), timeout=timeout,
                                      check=False)
            except subprocess.TimeoutExpired:
                raise ScenarioError(f"loadtest {name} ran past {timeout:.0f} s; "
                                    f"see {err}") from None
        if done.returncode != 0:
            raise ScenarioError(f"loadtest {name} exited with {done.returncode}: {tail(err)} "
                                f"(see {err})")
        try:
            doc: dict[str, Any] = json.loads(out.read_text())
        except ValueError as exc:
            raise ScenarioError(
                f"loadtest {name} printed no JSON document ({exc}); see {out}") from None
        return doc

    def measured(self, procs: Processes, name: str, urls: list[str], **load: Any
                 ) -> dict[str, Any]:
        sample = CpuSample(procs.pids(), "loadtest")
        doc = self.loadtest(name, urls, **load)
        return {"loadtest": doc, "cpu": sample.done()}

    # -- the scenarios

    def reference(self) -> None:
        plan = self.plan
        # The one-request transaction (what an Idempotency-Key send still commits), and
        # the grouped one the API commits for concurrent sends: the ceiling is the best.
        variants = (
            ("reference", 1, plan.reference_levels, "the one-request accept transaction"),
            ("reference_grouped", plan.reference_group, plan.reference_group_levels,
             f"the accept transaction of {plan.reference_group} requests at once"),
        )
        for name, group, levels, what in variants:
            def measure(group: int = group, levels: str = levels,
                        name: str = name) -> dict[str, Any]:
                argv = [sys.executable, str(ROOT / "benchmarks" / "reference_limit.py"),
                        "--database-url", self.services.database_url, "--json",
                        "--users", str(USERS), "--concurrency", levels,
                        "--duration", str(plan.reference_seconds), "--group", str(group)]
                sample = CpuSample({}, "reference")
                done = subprocess.run(argv, capture_output=True, cwd=ROOT, check=False,
                                      timeout=600)
                cpu = sample.done()
                (self.gateway.logdir / f"{name}.err").write_bytes(done.stderr)
                if done.returncode != 0:
                    raise ScenarioError(f"reference_limit.py exited with {done.returncode}: "
                                        f"{tail(self.gateway.logdir / f'{name}.err')}")
                return {"result": json.loads(done.stdout), "cpu": cpu}

            try:
                self.recorder.record(
                    name, f"benchmarks/reference_limit.py --group {group}: {what}, "
                    f"asyncmy alone, connections {levels}, "
                    f"{plan.reference_seconds:g} s each", measure)
            finally:
                self.gateway.truncate()

    def accept(self) -> None:
        plan = self.plan
        runs: list[tuple[str, str, dict[str, Any]]] = [
            ("accept_spread", f"closed loop, {plan.accept_concurrency} in flight, 1 recipient, "
             f"{USERS:,} customers, {plan.accept_seconds:g} s",
             {"rps": 0, "duration": plan.accept_seconds,
              "concurrency": plan.accept_concurrency}),
            ("accept_hot", "as accept_spread with 90 % of requests from customer 1",
             {"rps": 0, "duration": plan.accept_seconds,
              "concurrency": plan.accept_concurrency, "hot_share": 0.9}),
            ("accept_100", f"closed loop, {plan.accept_100_concurrency} in flight, "
             f"100 recipients, {plan.accept_seconds:g} s",
             {"rps": 0, "duration": plan.accept_seconds,
              "concurrency": plan.accept_100_concurrency, "recipients": 100}),
            ("accept_1000rps", f"open loop at {plan.open_loop_rps} req/s, 1 recipient, "
             f"{plan.accept_seconds:g} s",
             {"rps": plan.open_loop_rps, "duration": plan.accept_seconds,
              "concurrency": plan.open_loop_concurrency}),
        ]
        with self.gateway.processes("accept") as procs:
            try:
                self.gateway.truncate()
                urls = self.gateway.start_apis(procs, "accept")
                # Warm-up, not recorded: connection pools, the buffer pool, code paths.
                self.loadtest("warmup", urls, rps=0, duration=min(3.0, plan.accept_seconds),
                              concurrency=plan.accept_concurrency)
            except Exception as exc:
                self.recorder.fail_all([(name, text) for name, text, _ in runs], exc)
                return
            for name, text, load in runs:
                self.gateway.truncate()  # every run starts from the same (empty) tables
                self.recorder.record(name, f"2 smsgw api; {text}",
                                     functools.partial(self.measured, procs, name, urls, **load))

    def end_to_end(self) -> None:
        plan = self.plan

        def measure(procs: Processes) -> dict[str, Any]:
            self.gateway.truncate()
            operators = self.gateway.start_operators(procs)
            spec = ",".join(f"{name}=http://{urlsplit(url).netloc}"
                            for name, url in operators.items())
            urls = self.gateway.start_apis(procs, "e2e", SMSGW_OPERATORS=spec)
            self.gateway.start_background(procs, "e2e", "relay", SMSGW_OPERATORS=spec)
            self.gateway.start_workers(procs, "e2e", spec)
            result = self.measured(procs, "end_to_end", urls, rps=plan.e2e_rps,
                                   duration=plan.e2e_seconds, concurrency=plan.e2e_concurrency,
                                   wait_delivery=True)
            result["operators"] = {name: get_json(f"{url}/stats")
                                   for name, url in operators.items()}
            return result

        with self.gateway.processes("e2e") as procs:
            self.recorder.record(
                "end_to_end", "2 operator-sim, 2 api, relay, 2 workers (express, normal); "
                f"{plan.e2e_rps} req/s of 1 recipient for {plan.e2e_seconds:g} s, "
                "then every delivery awaited", lambda: measure(procs))

    def express(self) -> None:
        plan = self.plan

        def unfinished_normal() -> int:
            return self.services.count(
                "sms_status WHERE type = 'normal' AND status IN ('PENDING', 'SENDING')")

        def measure(procs: Processes) -> dict[str, Any]:
            self.gateway.truncate()
            operators = self.gateway.start_operators(procs)
            spec = ",".join(f"{name}=http://{urlsplit(url).netloc}"
                            for name, url in operators.items())
            urls = self.gateway.start_apis(procs, "express", SMSGW_OPERATORS=spec)
            self.gateway.start_background(procs, "express", "relay", SMSGW_OPERATORS=spec)
            # The backlog: normal SMS of 100 recipients, accepted and published, no worker yet.
            # A little over the target, since the worker finishes some before express starts.
            wanted = math.ceil(plan.backlog_recipients * 1.01)
            fill_started = time.monotonic()
            for attempt in range(3):
                missing = wanted - self.services.count("sms_status WHERE type = 'normal'")
                if missing <= 0:
                    break
                requests = math.ceil(missing / 100)
                self.loadtest(f"express_backlog{attempt}", urls, rps=plan.backlog_rps,
                              duration=max(1.0, requests / plan.backlog_rps),
                              concurrency=32, recipients=100)
            filled_s = time.monotonic() - fill_started
            # The relay publishes only what the normal queue may hold (SMSGW_RELAY_AHEAD):
            # the rest of the backlog waits in the outbox, as it does in production.
            published_s = wait_until(
                "the relay to fill the normal queue",
                lambda: self.services.count("outbox_events WHERE status = 'published'") > 0,
                timeout=300)
            queued = unfinished_normal()
            self.gateway.start_workers(procs, "express", spec)
            wait_until("the worker's first delivery", lambda: unfinished_normal() < queued,
                       timeout=60)
            backlog = unfinished_normal()
            started = time.monotonic()
            # Normal sends keep arriving on top of the backlog while express goes.
            with ThreadPoolExecutor(1) as pool:
                normal = pool.submit(
                    self.loadtest, "express_normal", urls, rps=plan.express_normal_rps,
                    duration=plan.express_seconds, concurrency=64,
                    recipients=plan.express_normal_recipients, first_user=2)
                result = self.measured(procs, "express", urls, rps=plan.express_rps,
                                       duration=plan.express_seconds, concurrency=64,
                                       express_ratio=1.0, wait_delivery=True)
                result["normal"] = normal.result()
            left = unfinished_normal()
            drained = backlog - left
            result.update(
                backlog_recipients=backlog, backlog_filled_s=round(filled_s, 1),
                backlog_published_after_s=round(published_s, 1),
                normal_unfinished_at_end=left,
                normal_drained_per_s=round(drained / (time.monotonic() - started), 1),
            )
            return result

        with self.gateway.processes("express") as procs:
            self.recorder.record(
                "express", "2 operator-sim, 2 api, relay; "
                f"{plan.backlog_recipients:,} normal recipients queued, then the worker "
                f"starts and express goes at {plan.express_rps} req/s for "
                f"{plan.express_seconds:g} s while normal sends keep arriving "
                f"({plan.express_normal_rps} req/s of {plan.express_normal_recipients} "
                "recipients)", lambda: measure(procs))


    def fairness(self) -> None:
        plan = self.plan
        heavy, lights = 1, range(2, 2 + plan.fairness_lights)

        def heavy_done() -> tuple[float, int]:
            return time.monotonic(), self.services.count(
                f"sms_status WHERE user_id = {heavy} AND status = 'DONE'")

        def measure(procs: Processes) -> dict[str, Any]:
            self.gateway.truncate()
            operators = self.gateway.start_operators(procs, plan.fairness_latency_ms)
            spec = ",".join(f"{name}=http://{urlsplit(url).netloc}"
                            for name, url in operators.items())
            urls = self.gateway.start_apis(procs, "fairness", SMSGW_OPERATORS=spec)
            self.gateway.start_background(procs, "fairness", "relay", SMSGW_OPERATORS=spec)
            self.gateway.start_workers(procs, "fairness", spec)
            requests = math.ceil(plan.fairness_backlog / 100)
            self.loadtest("fairness_backlog", urls, rps=plan.backlog_rps,
                          duration=max(1.0, requests / plan.backlog_rps), concurrency=32,
                          recipients=100, users=1, first_user=heavy)
            wait_until("the heavy customer's first deliveries", lambda: heavy_done()[1] > 0,
                       timeout=60)
            time.sleep(plan.fairness_warmup_s)  # the relays' headroom finds its size
            before = heavy_done()
            time.sleep(plan.fairness_before_s)
            started = heavy_done()
            sample = CpuSample(procs.pids(), "loadtest")
            load: dict[str, Any] = {"urls": urls, "rps": plan.fairness_rps,
                                    "duration": plan.fairness_seconds, "concurrency": 16,
                                    "wait_delivery": True}
            with ThreadPoolExecutor(2) as pool:
                light = pool.submit(self.loadtest, "fairness_light", users=len(lights),
                                    first_user=lights[0], **load)
                express = pool.submit(self.loadtest, "fairness_express", users=10,
                                      first_user=lights[-1] + 1, express_ratio=1.0, **load)
                time.sleep(plan.fairness_seconds)
                ended = heavy_done()
                heavy_left = self.services.count(
                    f"sms_status WHERE user_id = {heavy} AND status IN ('PENDING', 'SENDING')")
                docs = light.result(), express.result()  # every light SMS delivered
                cpu = sample.done()
            # The heavy customer alone again, as long as before: its rate alone is taken
            # from both windows (a 3 s window alone moved the share by ±0.08 between runs),
            # the second counted only if its backlog lasted through it.
            resumed = heavy_done()
            time.sleep(plan.fairness_before_s)
            after = heavy_done()
            still_left = self.services.count(
                f"sms_status WHERE user_id = {heavy} AND status = 'PENDING'")
            return {
                "loadtest": docs[0], "express": docs[1], "cpu": cpu,
                "operator_latency_ms": plan.fairness_latency_ms,
                "heavy_backlog_recipients": requests * 100,
                "heavy_before_per_s": round((started[1] - before[1]) / (started[0] - before[0]),
                                            1),
                "heavy_during_per_s": round((ended[1] - started[1]) / (ended[0] - started[0]),
                                            1),
                "heavy_unfinished_at_end": heavy_left,
                "heavy_after_per_s": round((after[1] - resumed[1]) / (after[0] - resumed[0]), 1)
                if still_left > 0 else None,
            }

        with self.gateway.processes("fairness") as procs:
            self.recorder.record(
                "fairness", f"2 operator-sim ({plan.fairness_latency_ms} ms each), 2 api, relay, "
                f"2 workers; one customer's {plan.fairness_backlog:,} normal recipients "
                f"(SMS of 100) queued, then {plan.fairness_lights} light customers send "
                f"{plan.fairness_rps} normal req/s and express goes at {plan.fairness_rps} "
                f"req/s, for {plan.fairness_seconds:g} s", lambda: measure(procs))

    def receipts(self) -> None:
        """End to end twice at the same load, in processes of its own each: the
        simulators reporting no receipts, then 85/8/2/5 % (A to api 1, B to api 2)."""
        plan = self.plan
        for on in (False, True):
            name = f"receipts_{'on' if on else 'off'}"
            what = (f"receipts {rx.RECEIPT_PLAN.replace(',', ' ')} {plan.receipt_delay_ms} ms "
                    "after each send, A's to api 1 and B's to api 2" if on else "no receipts")
            with self.gateway.processes(name) as procs:
                self.recorder.record(
                    name, f"as end_to_end, {what}: 2 operator-sim, 2 api, relay, 2 workers; "
                    f"{plan.e2e_rps} req/s of 1 recipient for {plan.receipts_seconds:g} s, "
                    "then every delivery" + (" and receipt" if on else "") + " awaited",
                    functools.partial(self.receipts_half, procs, name, on))

    def receipts_half(self, procs: Processes, name: str, on: bool) -> dict[str, Any]:
        """One half of the receipts scenario; the gateway's configuration (receipt tokens
        included) is the same in both, only the simulators differ."""
        plan = self.plan
        self.gateway.truncate()
        tokens = {op: f"bench-{self.gateway.run_id}-{op}" for op in ("A", "B")}
        ports = [free_port(), free_port()]  # the APIs', for the simulators' receipt URLs
        seeds = {"A": 1, "B": 2}
        extra = {op: ["--seed", str(seeds[op])] for op in tokens}
        if on:
            for (op, token), port in zip(tokens.items(), ports, strict=True):
                extra[op] += [
                    "--receipt-url", f"http://127.0.0.1:{port}/operators/{op}/receipts",
                    "--receipt-token", token, "--receipts", rx.RECEIPT_PLAN,
                    "--receipt-delay-ms", str(plan.receipt_delay_ms)]
        operators = self.gateway.start_operators(procs, extra_args=extra)
        spec = ",".join(f"{op}=http://{urlsplit(url).netloc}?receipt_token={tokens[op]}"
                        for op, url in operators.items())
        urls = self.gateway.start_apis(procs, name, ports=ports, SMSGW_OPERATORS=spec)
        metrics = {f"api{n}": f"{url}/metrics" for n, url in enumerate(urls, 1)}
        metrics["relay"] = self.gateway.start_background(procs, name, "relay",
                                                         SMSGW_OPERATORS=spec)
        metrics.update(zip(("worker-express", "worker-normal"),
                           self.gateway.start_workers(procs, name, spec), strict=True))

        locks = rx.innodb(self.services)
        sample = CpuSample(procs.pids(), "loadtest")
        doc = self.loadtest(name, urls, rps=plan.e2e_rps, duration=plan.receipts_seconds,
                            concurrency=plan.e2e_concurrency, seed=1)
        delivered_after = rx.poll(lambda: rx.unfinished(self.services) == 0,
                                  plan.delivery_timeout_s)
        settled_after = None
        if on:
            def settled() -> bool:
                stats = {op: get_json(f"{url}/stats") for op, url in operators.items()}
                owed = rx.simulator_receipts(stats)
                return (owed["pending"] == 0
                        and rx.applied_in(rx.scrape(metrics)) >= owed["reported"])

            settled_after = rx.poll(settled, rx.SETTLE_TIMEOUT_S)
        cpu = sample.done()
        result: dict[str, Any] = {"loadtest": doc, "cpu": cpu, **rx.outcome(self.services),
                                  "receipt_delay_ms": plan.receipt_delay_ms if on else None,
                                  "delivered_after_load_s": delivered_after,
                                  "innodb": rx.since(locks, rx.innodb(self.services))}
        result["operators"] = {op: get_json(f"{url}/stats") for op, url in operators.items()}
        if on:
            gateway = rx.scrape(metrics)
            owed = rx.simulator_receipts(result["operators"])
            result["receipts"].update(
                plan=rx.RECEIPT_PLAN, settled_after_delivery_s=settled_after,
                simulators=owed, gateway=gateway, gateway_applied=rx.applied_in(gateway))
        return result

    def smpp(self) -> None:
        """End to end twice at the same load, in processes of its own each: two HTTP
        operator simulators, then two simulated SMSCs over SMPP (windows of 10)."""
        plan = self.plan
        for protocol in ("http", "smpp"):
            name = f"smpp_{protocol}"
            what = ("2 operator-sim over HTTP" if protocol == "http" else
                    f"2 operator-sim --smpp (1 bind per worker process, window "
                    f"{plan.smpp_window})")
            with self.gateway.processes(name) as procs:
                self.recorder.record(
                    name, f"as end_to_end, {what}, no receipts: 2 api, relay, 2 workers; "
                    f"{plan.e2e_rps} req/s of 1 recipient for {plan.smpp_seconds:g} s, then "
                    "every delivery awaited",
                    functools.partial(self.smpp_half, procs, name, protocol))

    def smpp_half(self, procs: Processes, name: str, protocol: str) -> dict[str, Any]:
        """One half of the smpp scenario. Neither half's operators report receipts, and
        the workers look for kept receipts in both (the HTTP operators have receipt
        tokens, as an SMPP operator implies): only the protocol differs."""
        plan = self.plan
        self.gateway.truncate()
        if protocol == "smpp":
            smscs = self.gateway.start_smscs(procs, sm.SYSTEM_ID, sm.PASSWORD,
                                             ["--receipts", sm.NO_RECEIPTS, "--seed", "1"])
            spec = sm.operators_url({op: address for op, (address, _) in smscs.items()},
                                    plan.smpp_window)
            stats = {op: f"{control}/stats" for op, (_, control) in smscs.items()}
        else:
            operators = self.gateway.start_operators(procs)
            spec = ",".join(f"{op}=http://{urlsplit(url).netloc}"
                            f"?receipt_token=bench-{self.gateway.run_id}-{op}"
                            for op, url in operators.items())
            stats = {op: f"{url}/stats" for op, url in operators.items()}
        urls = self.gateway.start_apis(procs, name, SMSGW_OPERATORS=spec)
        self.gateway.start_background(procs, name, "relay", SMSGW_OPERATORS=spec)
        workers = dict(zip(("worker-express", "worker-normal"),
                           self.gateway.start_workers(procs, name, spec), strict=True))

        sample = CpuSample(procs.pids(), "loadtest")
        doc = self.loadtest(name, urls, rps=plan.e2e_rps, duration=plan.smpp_seconds,
                            concurrency=plan.e2e_concurrency, seed=1)
        delivered_after = rx.poll(lambda: rx.unfinished(self.services) == 0,
                                  plan.delivery_timeout_s)
        cpu = sample.done()
        result: dict[str, Any] = {
            "loadtest": doc, "cpu": cpu, "protocol": protocol,
            "delivery": rx.outcome(self.services)["delivery"],
            "delivered_after_load_s": delivered_after,
            "operators": {op: get_json(url) for op, url in stats.items()},
        }
        if protocol == "smpp":
            result["smpp_window"] = plan.smpp_window
            result["smscs"] = sm.smsc_counts(result["operators"])
            result["gateway_smpp"] = sm.scrape(workers)
        return result

    def webhooks(self) -> None:
        """End to end twice at the same load, in processes of its own each: no webhook
        endpoints, then one for every customer (every event type) and `smsgw webhooks`
        delivering to a local receiver (benchmarks/bench/webhooks.py)."""
        plan = self.plan
        key = wh.new_key()  # SMSGW_WEBHOOK_KEY of every process of both halves
        for on in (False, True):
            name = f"webhooks_{'on' if on else 'off'}"
            what = (f"every customer's endpoint subscribed to every event type, smsgw "
                    f"webhooks delivering to a receiver on {plan.webhooks_receiver_ports} "
                    "ports of 127.0.0.1" if on else "no webhook endpoints")
            with self.gateway.processes(name) as procs:
                self.recorder.record(
                    name, f"as end_to_end, {what}, no receipts: 2 operator-sim, 2 api, relay, "
                    f"2 workers{', webhooks' if on else ''}; {plan.e2e_rps} req/s of 1 "
                    f"recipient for {plan.webhooks_seconds:g} s, then every delivery"
                    + (" and webhook event" if on else "") + " awaited",
                    functools.partial(wh.run_half, self, procs, name, on, key))

