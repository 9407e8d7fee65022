"""A chaos run's summary in one line: the verdict, what was done, what was counted."""

from __future__ import annotations

from typing import Any


def summary_line(summary: dict[str, Any]) -> str:
    violations = summary["violations"]
    verdict = ("OK" if not violations else
               "VIOLATIONS " + ", ".join(f"{k}={v}" for k, v in violations.items()))
    if summary.get("run_problems"):
        verdict += f" (INVALID RUN: {'; '.join(summary['run_problems'])})"
    st = summary["statuses"]
    return (
        f"chaos {verdict} | {summary['duration_s']} s, {summary['kills']} kills,"
        f" db cuts {summary['db_cuts']} ({summary['db_connections_cut']} conns),"
        f" mq cuts {summary['mq_cuts']} ({summary['mq_connections_cut']} conns),"
        f" exits {sum(summary['exits'].values())} | {summary['requests']} requests:"
        f" {summary['accepted_sms']} accepted ({summary['keyed_sms']} keyed),"
        f" 5xx {summary['five_xx']}, timeouts/broken {summary['timeouts']},"
        f" refused {summary['refused']},"
        f" gave up {summary['gave_up']} | {summary['recipients']} recipients"
        f" DONE {st.get('DONE', 0)} FAILED {st.get('FAILED', 0)}"
        f" unfinished {summary['recipients'] - st.get('DONE', 0) - st.get('FAILED', 0)},"
        f" {summary['refunds']} refunds, drained {'yes' if summary['drained'] else 'NO'}"
        f" in {summary['drain_s']} s | operator duplicates {summary['operator_duplicates']}"
        f" (same {summary['operator_duplicates_same']},"
        f" across {summary['operator_duplicates_across']}),"
        f" failed-but-sent {summary['failed_but_operator_accepted']} (reported, not violations)"
    )
