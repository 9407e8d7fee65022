"""docs/configuration.md's tables, made from the settings object and the variables beside it.

    python tools/settings_doc.py           # print the tables
    python tools/settings_doc.py --write   # replace them in docs/configuration.md
    python tools/settings_doc.py --check   # exit 1 if docs/configuration.md is out of date

A setting's variable and default come from its field of `smsgw_app.config.Settings`,
its meaning from the string under the field, so the page cannot drift from
the code: `make test` runs --check (tests/tooling/test_settings_doc.py), and
fails too on a field without its string. The variables read outside Settings
(OpenTelemetry's, the tests' and the benchmarks') are listed in `OUTSIDE`
below; the same test fails on a variable the code reads that is in no table.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from smsgw_app.config import Settings

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "src" / "smsgw_app" / "config.py"
PAGE = ROOT / "docs" / "configuration.md"
SETTINGS_BLOCK = ("<!-- settings: made by tools/settings_doc.py --write -->",
                  "<!-- end of settings -->")
OUTSIDE_BLOCK = ("<!-- variables outside the settings: made by tools/settings_doc.py --write -->",
                 "<!-- end of variables outside the settings -->")


@dataclass(frozen=True)
class Variable:
    """A variable read outside `Settings`: its default as text and what it does."""

    name: str
    default: str
    meaning: str
    read_by: str


OUTSIDE: tuple[Variable, ...] = (
    # Tracing: read by smsgw_adapters/observability/tracing/settings.py and the SDK.
    Variable("OTEL_TRACES_EXPORTER", "`none`",
             "tracing: `none`, `otlp` (OTLP over HTTP/protobuf, batched), `console` (each "
             "span as one JSON line on stdout) or `otlp,console`. Unlike OpenTelemetry's "
             "own default, unset means off: no SDK provider is installed "
             "([observability.md](observability.md#traces-one-per-message))",
             "every process"),
    Variable("OTEL_EXPORTER_OTLP_ENDPOINT", "`http://localhost:4318`",
             "the collector; `/v1/traces` is appended to it, not to "
             "`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, which overrides it. `_HEADERS`, "
             "`_TIMEOUT`, `_COMPRESSION`, `_CERTIFICATE` as in the OpenTelemetry spec",
             "every process (the SDK)"),
    Variable("OTEL_EXPORTER_OTLP_PROTOCOL", "`http/protobuf`",
             "the only one supported, here and as `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`: "
             "with `otlp`, another stops the command", "every process"),
    Variable("OTEL_SERVICE_NAME", "`smsgw` (`serve`), `smsgw-api`, `smsgw-relay`, "
             "`smsgw-worker`", "`service.name` of the process's spans",
             "every process (the SDK)"),
    Variable("OTEL_RESOURCE_ATTRIBUTES", "unset",
             "more resource attributes, e.g. `deployment.environment=prod`",
             "every process (the SDK)"),
    Variable("OTEL_TRACES_SAMPLER", "`parentbased_always_on`",
             "sampling, with `OTEL_TRACES_SAMPLER_ARG`: a sampled client trace is kept",
             "every process (the SDK)"),
    Variable("OTEL_BSP_SCHEDULE_DELAY", "the SDK's",
             "the batch span processor of `otlp`, with `OTEL_BSP_MAX_QUEUE_SIZE` and the "
             "other `OTEL_BSP_*`", "every process (the SDK)"),
    Variable("OTEL_PROPAGATORS", "`tracecontext,baggage`", "how a trace context is carried",
             "every process (the SDK)"),
    Variable("OTEL_SDK_DISABLED", "unset", "`true`: tracing off, whatever else is set",
             "every process"),
    Variable("OTEL_SEMCONV_STABILITY_OPT_IN", "`http` when tracing is on",
             "the HTTP spans use the stable semantic conventions", "every process"),
    # The tests (tests/services.py, tests/integration/test_fuzz_document.py).
    Variable("SMSGW_REQUIRE_SERVICES", "unset",
             "`1`: a test whose MariaDB or RabbitMQ cannot be reached fails instead of "
             "being skipped (`.ci/run` sets it, after starting them)", "the tests"),
    Variable("SMSGW_TEST_MARIADB_HOST", "`127.0.0.1`",
             "the MariaDB server of the tests (each run makes its own databases)", "the tests"),
    Variable("SMSGW_TEST_MARIADB_PORT", "`3306`", "its port", "the tests"),
    Variable("SMSGW_TEST_MARIADB_USER", "`root`", "its user, without a password", "the tests"),
    Variable("SMSGW_TEST_RABBITMQ_URL", "`amqp://guest:guest@127.0.0.1:5672/`",
             "the RabbitMQ of the tests (each run makes its own queues)", "the tests"),
    Variable("SMSGW_FUZZ_SEED", "`20261203`",
             "the fuzzer's seed in `test_fuzz_document.py` (fixed: `make test` is "
             "reproducible)", "the tests"),
    Variable("SMSGW_FUZZ_EXAMPLES", "`60`",
             "the fuzzer's examples per operation in `test_fuzz_document.py`", "the tests"),
    Variable("SMSGW_FUZZ_CUSTOMER", "unset",
             "the customer whose key the fuzzer sends with, topped up by its hook "
             "(`fuzz_hooks.py`); `test_fuzz_document.py` sets it", "the fuzzer's hook"),
    Variable("SMSGW_TEST_RACE_SEED", "`25`",
             "the seed of the MariaDB receipt races in `test_receipts_contract.py`",
             "the tests"),
    Variable("SMSGW_FUZZ_OPERATOR", "unset",
             "the operator whose receipt token the fuzzer sends with: its hook posts the "
             "receipts generated as valid as this operator's; `test_fuzz_document.py` sets it",
             "the fuzzer's hook"),
    Variable("SMSGW_FUZZ_KEY", "unset",
             "the customer key of the fuzzer's run: its hook registers that customer's "
             "webhook endpoint (and queues an event) before the routes that act on one; "
             "`test_fuzz_document.py` sets it", "the fuzzer's hook"),
    # The benchmarks and the chaos test (their --help says the same).
    Variable("SMSGW_CHAOS_MYSQL", "`mysql://root@127.0.0.1:3306`",
             "the MariaDB server of `make chaos` (`--mysql`)", "`benchmarks/chaos.py`"),
    Variable("SMSGW_CHAOS_AMQP", "`amqp://guest:guest@127.0.0.1:5672/`",
             "the RabbitMQ of `make chaos` (`--amqp`)", "`benchmarks/chaos.py`"),
    Variable("SMSGW_BENCH_BROKER_URL", "`amqp://guest:guest@127.0.0.1:5672/`",
             "the RabbitMQ of the consumer benchmark", "`benchmarks/faststream_paths.py`"),
)


def descriptions() -> dict[str, str]:
    """Each Settings field's name -> the string under it, on one line ("" if none)."""
    tree = ast.parse(CONFIG.read_text(encoding="utf-8"))
    [settings] = [node for node in tree.body
                  if isinstance(node, ast.ClassDef) and node.name == "Settings"]
    found: dict[str, str] = {}
    body = settings.body
    for field, after in zip(body, [*body[1:], None], strict=True):
        if not isinstance(field, ast.AnnAssign) or not isinstance(field.target, ast.Name):
            continue
        text = ""
        if (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            text = " ".join(after.value.value.split())
        found[field.target.id] = text
    return found


def default_text(value: Any) -> str:
    """A default as one would set it in the environment."""
    if value in (None, "", ()):
        return "unset"
    if isinstance(value, tuple):
        return "`" + ",".join(_spelled(item) for item in value) + "`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def _spelled(item: Any) -> str:
    if hasattr(item, "name") and hasattr(item, "url"):  # an OperatorSpec: NAME=URL
        return f"{item.name}={item.url}"
    return str(item)


def _default(field: msgspec.structs.FieldInfo) -> Any:
    if field.default is not msgspec.NODEFAULT:
        return field.default
    return field.default_factory()


def escaped(text: str) -> str:
    return text.replace("|", "\\|")  # a pipe would end the cell


def settings_table() -> str:
    meanings = descriptions()
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for field in msgspec.structs.fields(Settings):
        lines.append(f"| `{field.encode_name}` | {default_text(_default(field))} "
                     f"| {escaped(meanings.get(field.name, ''))} |")
    return "\n".join(lines)


def outside_table() -> str:
    lines = ["| variable | default | meaning | read by |", "|---|---|---|---|"]
    lines += [f"| `{v.name}` | {escaped(v.default)} | {escaped(v.meaning)} | {v.read_by} |"
              for v in OUTSIDE]
    return "\n".join(lines)


def documented_names() -> set[str]:
    """Every variable the page's tables name."""
    return ({field.encode_name for field in msgspec.structs.fields(Settings)}
            | {v.name for v in OUTSIDE})


def _replaced(page: str, block: tuple[str, str], table: str) -> str:
    begin, end = block
    head, found, rest = page.partition(begin)
    _, found_end, tail = rest.partition(end)
    if not found or not found_end:
        raise SystemExit(f"{PAGE}: the markers {begin!r} and {end!r} are missing")
    return f"{head}{begin}\n{table}\n{end}{tail}"


def page_with_tables(page: str) -> str:
    page = _replaced(page, SETTINGS_BLOCK, settings_table())
    return _replaced(page, OUTSIDE_BLOCK, outside_table())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="update docs/configuration.md")
    mode.add_argument("--check", action="store_true", help="exit 1 if it is out of date")
    args = parser.parse_args(argv)
    page = PAGE.read_text(encoding="utf-8")
    wanted = page_with_tables(page)
    if args.write:
        PAGE.write_text(wanted, encoding="utf-8")
    elif args.check:
        if page != wanted:
            print(f"{PAGE.relative_to(ROOT)} is out of date: "
                  "run python tools/settings_doc.py --write", file=sys.stderr)
            return 1
    else:
        print(settings_table())
        print()
        print(outside_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
