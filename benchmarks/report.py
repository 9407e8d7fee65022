"""The pure part of `make bench`: figures from the scenarios' documents, targets, Markdown.

No I/O here: benchmarks/run.py measures and writes, this module only computes, so
that tests/tooling/test_bench_report.py can check it without services. The work is
done in benchmarks/bench/: figures.py (what each record says), targets.py (met or
not, and why) and markdown.py (the page).
"""

from __future__ import annotations

from benchmarks.bench.figures import (
    E2E_SECONDS,
    EXPRESS_BACKLOG,
    OPEN_LOOP_RPS,
    Figures,
    Scenarios,
    derive_figures,
    failed_requests,
    loadtest,
    ok_per_s,
    recipients_per_s,
)
from benchmarks.bench.markdown import TIMES, fmt, markdown
from benchmarks.bench.targets import (
    CONTEXT,
    FAILURE_SHARE_LIMIT,
    TARGETS,
    Target,
    bound,
    cpu_budget,
    cpu_summary,
    evaluate,
    saturated,
)

__all__ = [
    "CONTEXT", "E2E_SECONDS", "EXPRESS_BACKLOG", "FAILURE_SHARE_LIMIT", "OPEN_LOOP_RPS",
    "TARGETS", "TIMES", "Figures", "Scenarios", "Target", "bound", "cpu_budget", "cpu_summary",
    "derive_figures", "evaluate", "failed_requests", "fmt", "loadtest", "markdown", "ok_per_s",
    "recipients_per_s", "saturated",
]
