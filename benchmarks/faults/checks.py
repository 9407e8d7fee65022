"""The checks of a drained chaos run: money, states, idempotency and the operators' view."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Protocol

from benchmarks.faults.workload import Load

TERMINAL = ("DONE", "FAILED")


class Database(Protocol):
    """The run's database, as the checks read it."""

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]: ...


def check(services: Database, load: Load, sims: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The figures and violations of a drained run, from the database and the simulators."""
    violations: Counter[str] = Counter()
    examples: dict[str, str] = {}

    def violate(kind: str, example: object) -> None:
        violations[kind] += 1
        examples.setdefault(kind, str(example)[:300])

    rows = {(str(s), str(r)): (str(st), int(u)) for s, r, st, u in services.sql(
        "SELECT sms_identifier, recipient, status, user_id FROM sms_status")}
    per_sms: Counter[str] = Counter(s for s, _ in rows)
    txs = [(int(u), str(kind), str(tid), int(amount)) for u, kind, tid, amount in services.sql(
        "SELECT user_id, transaction_type, transaction_id, amount FROM user_transactions")]
    balances = {int(u): int(b) for u, b in services.sql(
        "SELECT user_id, balance FROM user_balances")}

    # Every recipient of a 200-answered send exists and is terminal; so is every row.
    for sent in load.accepted:
        for recipient in sent.recipients:
            if (sent.sms, recipient) not in rows:
                violate("answered_recipient_missing", f"{sent.sms}:{recipient}")
    statuses = Counter(status for status, _ in rows.values())
    for (sms, recipient), (status, _) in rows.items():
        if status not in TERMINAL:
            violate("recipient_not_terminal", f"{sms}:{recipient} {status}")

    # Balance == sum of the ledger, and never negative.
    ledger: Counter[int] = Counter()
    for user, _, _, amount in txs:
        ledger[user] += amount
    for user in set(balances) | set(ledger):
        if balances.get(user, 0) != ledger[user]:
            violate("balance_not_ledger_sum", f"user {user}: balance {balances.get(user)}"
                                              f" != sum {ledger[user]}")
        if balances.get(user, 0) < 0:
            violate("negative_balance", f"user {user}: {balances[user]}")

    # One charge per SMS, of the answered cost; refunds exactly for FAILED recipients.
    charges = {tid.removeprefix("charge:"): (user, -amount) for user, kind, tid, amount in txs
               if kind == "charge"}
    refunds = {tid: amount for _, kind, tid, amount in txs if kind == "refund"}
    refund_count = Counter(tid for _, kind, tid, _ in txs if kind == "refund")
    for tid, n in refund_count.items():
        if n > 1:
            violate("refunded_twice", tid)
    for sms in per_sms:
        if sms not in charges:
            violate("sms_without_charge", sms)
    for sms in charges:
        if sms not in per_sms:
            violate("charge_without_sms", sms)
    for sent in load.accepted:
        if (sms_charge := charges.get(sent.sms)) and sms_charge[1] != sent.cost:
            violate("charge_not_answered_cost", f"{sent.sms}: {sms_charge[1]} != {sent.cost}")
    expected_refunds = set()
    for (sms, recipient), (status, _) in rows.items():
        tid = f"refund:{sms}:{recipient}"
        if status == "FAILED":
            expected_refunds.add(tid)
            if tid not in refunds:
                violate("failed_not_refunded", tid)
            elif sms in charges and refunds[tid] != charges[sms][1] // per_sms[sms]:
                violate("refund_not_share", f"{tid}: {refunds[tid]}")
        elif status == "DONE" and tid in refunds:
            violate("done_refunded", tid)
    for tid in refunds.keys() - expected_refunds:
        sms, _, recipient = tid.removeprefix("refund:").rpartition(":")
        if (sms, recipient) not in rows:
            violate("refund_without_recipient", tid)
        elif rows[(sms, recipient)][0] not in TERMINAL:
            violate("unfinished_refunded", tid)

    # Idempotency: one key, one sms_identifier; the stored answer is the one given.
    for (user, idem), ids in load.by_key.items():
        if len(ids) > 1:
            violate("key_two_sms", f"user {user} key {idem}: {sorted(ids)}")
    stored = {(int(u), str(k)): json.loads(r) if isinstance(r, str) else r for u, k, r in
              services.sql("SELECT user_id, idem_key, response FROM idempotency_keys")}
    for (user, idem), ids in load.by_key.items():
        answer = stored.get((user, idem))
        if answer is None:
            violate("answered_key_not_stored", f"user {user} key {idem}")
        elif str(answer.get("sms_identifier")) not in ids:
            violate("key_stored_other_sms", f"user {user} key {idem}")
    if load.answers["409"]:
        violations["key_409_same_body"] += load.answers["409"]
        examples.setdefault("key_409_same_body", "a retry with the same key and body got 409")

    # The operators: who accepted what, and how many times.
    accepted_by = {name: set(s["references"]) for name, s in sims.items()}
    everywhere: Counter[str] = Counter()
    for refs in accepted_by.values():
        everywhere.update(refs)
    across = sum(1 for n in everywhere.values() if n > 1)
    same_operator = sum(int(s["stats"]["duplicates"]) for s in sims.values())
    failed_but_sent = 0
    for (sms, recipient), (status, _) in rows.items():
        reference = f"{sms}:{recipient}"
        if status == "DONE" and reference not in everywhere:
            violate("done_never_accepted_by_an_operator", reference)
        if status == "FAILED" and reference in everywhere:
            failed_but_sent += 1

    five_xx = sum(n for k, n in load.answers.items() if k.startswith("5"))
    return {
        "requests": load.requests,
        "answers": dict(sorted(load.answers.items())),
        "accepted_sms": len(load.accepted),
        "keyed_sms": len(load.by_key),
        "five_xx": five_xx,
        "timeouts": load.answers["timeout"] + load.answers["connection"],
        "refused": load.answers["refused"],
        "gave_up": load.gave_up,
        "unknown_unkeyed": load.unknown,
        "sms": len(per_sms),
        "recipients": len(rows),
        "statuses": dict(sorted(statuses.items())),
        "refunds": len(refunds),
        "customers": len(balances),
        "spent_customers": sum(1 for b in balances.values() if b < 4),
        "operator_duplicates": same_operator + across,
        "operator_duplicates_same": same_operator,
        "operator_duplicates_across": across,
        "failed_but_operator_accepted": failed_but_sent,
        "operators": {name: s["stats"] for name, s in sims.items()},
        "violations": dict(sorted(violations.items())),
        "violation_examples": examples,
    }
