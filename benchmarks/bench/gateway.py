"""The gateway as a scenario runs it: its settings, its queues, its processes, its tables."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from benchmarks.bench.processes import Processes, wait_http
from benchmarks.bench.services import Services
from benchmarks.harness.net import free_port
from benchmarks.harness.processes import smsgw


class Gateway:
    """Starts a scenario's `smsgw` processes on the bench database and queues of their own."""

    def __init__(self, services: Services, logdir: Path, overrides: dict[str, str],
                 log_level: str) -> None:
        self.services, self.logdir = services, logdir
        self.overrides, self.log_level = overrides, log_level
        self.run_id = uuid.uuid4().hex[:6]

    def env(self, scenario: str, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "SMSGW_DATABASE_URL": self.services.database_url,
            "SMSGW_BROKER_URL": self.services.amqp_url,
            "SMSGW_MAX_BACKLOG": "0",  # no backpressure: the outbox may grow as it will
            "SMSGW_LOG_LEVEL": self.log_level,
            "SMSGW_SHUTDOWN_TIMEOUT_S": "5",
            **{f"SMSGW_{kind.upper()}_QUEUE": name for kind, name in self.queues(scenario)},
            **extra,
            **self.overrides,
        })
        return env

    def queues(self, scenario: str) -> list[tuple[str, str]]:
        return [(kind, f"bench_{scenario}_{self.run_id}_{kind}")
                for kind in ("express", "normal", "dead_letter")]

    @contextlib.contextmanager
    def processes(self, scenario: str) -> Iterator[Processes]:
        procs = Processes(self.logdir, scenario)
        try:
            yield procs
        finally:
            procs.stop()
            with contextlib.suppress(Exception):
                self.services.delete_queues([name for _, name in self.queues(scenario)])

    def truncate(self) -> None:
        for table in ("sms_status", "outbox_events", "user_transactions", "idempotency_keys",
                      "operator_receipts"):
            self.services.sql(f"TRUNCATE TABLE {table}")

    def start_apis(self, procs: Processes, scenario: str, ports: Sequence[int] = (),
                   **extra: str) -> list[str]:
        """Two `smsgw api`, on `ports` when given (chosen before the operators that post
        receipts to them are started), else on free ones; their base URLs."""
        urls = []
        for n in (1, 2):
            port = ports[n - 1] if ports else free_port()
            proc = procs.start(f"api{n}", "api", smsgw("api", "--port", str(port)),
                               self.env(scenario, **extra))
            wait_http(f"http://127.0.0.1:{port}/readyz", proc, f"smsgw api {n}",
                      procs.log(f"api{n}"))
            urls.append(f"http://127.0.0.1:{port}")
        return urls

    def start_operators(self, procs: Processes, latency_ms: int = 0,
                        extra_args: Mapping[str, Sequence[str]] | None = None
                        ) -> dict[str, str]:
        """Operator simulators A and B, each with its `extra_args` (receipts); their URLs."""
        operators = {}
        for name in ("A", "B"):
            port = free_port()
            proc = procs.start(f"operator{name}", "operators",
                               smsgw("operator-sim", "--name", name, "--port", str(port),
                                     "--latency-ms", str(latency_ms),
                                     *(extra_args or {}).get(name, ())),
                               self.env("operators"))
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/stats", proc, f"operator-sim {name}", procs.log(f"operator{name}"))
            operators[name] = url
        return operators

    def start_smscs(self, procs: Processes, system_id: str, password: str,
                    extra_args: Sequence[str] = ()) -> dict[str, tuple[str, str]]:
        """SMSCs A and B (`smsgw operator-sim --smpp`), binds with `system_id` and
        `password`: each one's SMPP address (host:port) and control API's URL."""
        smscs = {}
        for name in ("A", "B"):
            port, control = free_port(), free_port()
            proc = procs.start(f"operator{name}", "operators",
                               smsgw("operator-sim", "--smpp", "--name", name,
                                     "--port", str(port), "--control-port", str(control),
                                     "--system-id", system_id, "--password", password,
                                     *extra_args),
                               self.env("operators"))
            url = f"http://127.0.0.1:{control}"
            wait_http(f"{url}/stats", proc, f"operator-sim --smpp {name}",
                      procs.log(f"operator{name}"))
            smscs[name] = (f"127.0.0.1:{port}", url)
        return smscs

    def start_background(self, procs: Processes, scenario: str, command: str,
                         *args: str, name: str = "", **extra: str) -> str:
        """`smsgw COMMAND ARGS` with a metrics port of its own; its /metrics URL."""
        port = free_port()
        name = name or command
        proc = procs.start(name, command, smsgw(command, *args),
                           self.env(scenario, SMSGW_METRICS_PORT=str(port), **extra))
        wait_http(f"http://127.0.0.1:{port}/metrics", proc, f"smsgw {command} {' '.join(args)}",
                  procs.log(name))
        return f"http://127.0.0.1:{port}/metrics"

    def start_workers(self, procs: Processes, scenario: str, spec: str) -> list[str]:
        """A worker process per lane, as production would run them: express keeps its
        time to the operator whatever the normal backlog does to the other's loop.
        Their /metrics URLs."""
        return [self.start_background(procs, scenario, "worker", "--lane", lane,
                                      name=f"worker-{lane}", SMSGW_OPERATORS=spec)
                for lane in ("express", "normal")]
