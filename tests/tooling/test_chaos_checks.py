"""benchmarks/chaos.py's checks find each violation they name, and none in a clean run.

The checks read the database with SQL; here a stand-in answers those few queries
with the rows of a small, hand-made run.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from benchmarks import chaos
from tests.peers.esme import connected

from smsgw_adapters.operators.smpp import url as smpp_url
from smsgw_adapters.operators.smpp.pdu import CommandStatus, SubmitSmResp


class Rows:
    """What the run's database holds; `sql` answers chaos.check's queries from it."""

    def __init__(self) -> None:
        # sms "s1": 2 recipients, express, cost 6 -> share 3; "s2": 1 recipient, cost 1.
        self.sms_status = [("s1", "0912001", "DONE", 1), ("s1", "0999001", "FAILED", 1),
                           ("s2", "0912002", "DONE", 2)]
        self.transactions = [
            (1, "topup", "topup:1:seed", 40), (1, "charge", "charge:s1", -6),
            (1, "refund", "refund:s1:0999001", 3),
            (2, "topup", "topup:2:seed", 10), (2, "charge", "charge:s2", -1),
        ]
        self.balances = {1: 37, 2: 9}
        self.keys = [(1, "k1", json.dumps({"sms_identifier": "s1"}))]

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        if "FROM sms_status" in statement:
            return list(self.sms_status)
        if "FROM user_transactions" in statement:
            return list(self.transactions)
        if "FROM user_balances" in statement:
            return list(self.balances.items())
        if "FROM idempotency_keys" in statement:
            return list(self.keys)
        raise AssertionError(statement)


def clean_load() -> chaos.Load:
    load = chaos.Load()
    load.accepted = [chaos.Accepted("s1", 1, ("0912001", "0999001"), 6, "k1"),
                     chaos.Accepted("s2", 2, ("0912002",), 1, None)]
    load.by_key = {(1, "k1"): {"s1"}}
    load.answers.update({"200": 2, "503": 1, "timeout": 1})
    return load


def sims(a: list[str], b: list[str], duplicates: int = 0) -> dict[str, dict[str, Any]]:
    return {"A": {"stats": {"accepted": len(a), "duplicates": duplicates, "failed": 0,
                            "rejected": 0}, "references": a},
            "B": {"stats": {"accepted": len(b), "duplicates": 0, "failed": 0, "rejected": 0},
                  "references": b}}


def run_check(rows: Rows, load: chaos.Load | None = None,
              operators: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    return chaos.check(rows, load or clean_load(),  # type: ignore[arg-type]
                       operators or sims(["s1:0912001"], ["s2:0912002"]))


def test_a_clean_run_has_no_violation_and_its_figures() -> None:
    summary = run_check(Rows())
    assert summary["violations"] == {}
    assert summary["statuses"] == {"DONE": 2, "FAILED": 1}
    assert (summary["five_xx"], summary["timeouts"], summary["refunds"]) == (1, 1, 1)
    assert summary["operator_duplicates"] == 0


def test_duplicate_operator_sends_are_counted_not_violations() -> None:
    summary = run_check(Rows(), operators=sims(["s1:0912001", "s2:0912002"], ["s2:0912002"],
                                               duplicates=2))
    assert summary["violations"] == {}
    assert (summary["operator_duplicates_same"], summary["operator_duplicates_across"]) == (2, 1)
    assert summary["operator_duplicates"] == 3


def _unfinished(rows: Rows, load: chaos.Load) -> None:
    rows.sms_status[0] = ("s1", "0912001", "SENDING", 1)


def _missing(rows: Rows, load: chaos.Load) -> None:
    del rows.sms_status[2]


def _negative(rows: Rows, load: chaos.Load) -> None:
    rows.transactions.append((2, "charge", "charge:s3", -20))
    rows.sms_status.append(("s3", "0912003", "DONE", 2))
    rows.balances[2] = -11


def _balance_off(rows: Rows, load: chaos.Load) -> None:
    rows.balances[1] = 40


def _not_refunded(rows: Rows, load: chaos.Load) -> None:
    del rows.transactions[2]
    rows.balances[1] = 34


def _done_refunded(rows: Rows, load: chaos.Load) -> None:
    rows.transactions.append((2, "refund", "refund:s2:0912002", 1))
    rows.balances[2] = 10


def _refund_twice(rows: Rows, load: chaos.Load) -> None:
    rows.transactions.append((1, "refund", "refund:s1:0999001", 3))
    rows.balances[1] = 40


def _wrong_share(rows: Rows, load: chaos.Load) -> None:
    rows.transactions[2] = (1, "refund", "refund:s1:0999001", 6)
    rows.balances[1] = 40


def _two_sms_for_a_key(rows: Rows, load: chaos.Load) -> None:
    load.by_key[(1, "k1")] = {"s1", "s9"}


def _conflict(rows: Rows, load: chaos.Load) -> None:
    load.answers["409"] += 1


def _uncharged(rows: Rows, load: chaos.Load) -> None:
    del rows.transactions[4]
    rows.balances[2] = 10


def _done_unsent(rows: Rows, load: chaos.Load) -> None:
    rows.sms_status.append(("s2", "0912009", "DONE", 2))


@pytest.mark.parametrize(("damage", "violation"), [
    (_unfinished, "recipient_not_terminal"),
    (_missing, "answered_recipient_missing"),
    (_negative, "negative_balance"),
    (_balance_off, "balance_not_ledger_sum"),
    (_not_refunded, "failed_not_refunded"),
    (_done_refunded, "done_refunded"),
    (_refund_twice, "refunded_twice"),
    (_wrong_share, "refund_not_share"),
    (_two_sms_for_a_key, "key_two_sms"),
    (_conflict, "key_409_same_body"),
    (_uncharged, "sms_without_charge"),
    (_done_unsent, "done_never_accepted_by_an_operator"),
])
def test_each_violation_is_found(damage: Any, violation: str) -> None:
    rows, load = Rows(), clean_load()
    damage(rows, load)
    summary = run_check(rows, load)
    assert violation in summary["violations"], summary["violations"]
    assert violation in chaos.summary_line({**summary, "duration_s": 1, "kills": 0,
                                            "db_cuts": 0, "db_connections_cut": 0,
                                            "mq_cuts": 0, "mq_connections_cut": 0,
                                            "exits": {}, "drained": True, "drain_s": 0})


# --- with SMPP operators (--operators smpp) ----------------------------------------------


class SmppRows(Rows):
    """The same run, its recipients keeping their operators' message ids: s1's DONE one
    A's "a1", its FAILED one none, s2's B's "b1"."""

    def __init__(self) -> None:
        super().__init__()
        self.message_ids = [("s1", "0912001", "A", "a1"), ("s1", "0999001", "", None),
                            ("s2", "0912002", "B", "b1")]

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        if "message_id" in statement:
            return list(self.message_ids)
        return super().sql(statement, *params)


def smscs(a: list[str], b: list[str], duplicates: int = 0) -> dict[str, dict[str, Any]]:
    """What the run reads of two SMSCs: their /stats, and the message ids they took."""
    found = sims(a, b, duplicates)
    return {name: {**state, "references": ids} for (name, state), ids in
            zip(found.items(), (a, b), strict=True)}


def test_smpp_message_ids_are_read_as_the_references_of_the_recipients_keeping_them() -> None:
    assert chaos.smpp_references(
        [("s1", "r1", "A", "x"), ("s2", "r2", "B", "x"), ("s3", "r3", "A", None),
         ("s4", "r4", "", None)], {"A": ["x", "lost"], "B": []},
    ) == {"A": ["s1:r1"], "B": []}  # an id B never issued is not B's, whoever else did


def test_with_smpp_a_clean_run_has_no_violation_and_its_duplicates() -> None:
    # A took a1 and, once more, a message whose answer was lost (a-lost: no one keeps it).
    summary = chaos.check_smpp(SmppRows(), clean_load(), smscs(["a1", "a-lost"], ["b1"],
                                                               duplicates=1))
    assert summary["violations"] == {}
    assert summary["statuses"] == {"DONE": 2, "FAILED": 1}
    assert (summary["operator_duplicates_same"], summary["operator_duplicates_across"]) == (1, 0)


@pytest.mark.parametrize("taken", [(["a1"], []), (["a1", "b1"], []), ([], ["b1", "a1"])],
                         ids=["never-issued", "issued-by-the-other-smsc", "a1-by-b"])
def test_with_smpp_a_done_recipient_whose_id_its_smsc_never_issued_is_a_violation(
    taken: tuple[list[str], list[str]],
) -> None:
    summary = chaos.check_smpp(SmppRows(), clean_load(), smscs(*taken))
    assert summary["violations"] == {"done_never_accepted_by_an_operator": 1}


def test_an_unknown_kind_of_operator_is_refused() -> None:
    with pytest.raises(ValueError, match="http, smpp"):
        chaos.run_with(chaos.Options(), "carrier-pigeon")


def test_the_run_starts_and_checks_the_operators_its_options_name() -> None:
    """The faults run takes its operators from its options: HTTP simulators by default."""
    from benchmarks.faults.checks import check
    from benchmarks.faults.operators import start_sim

    plain = chaos.Options()
    assert (plain.start_sim, plain.check) == (start_sim, check)


@pytest.mark.slow
def test_an_smsc_of_the_run_takes_its_controls_and_lists_the_ids_it_took(
    tmp_path: Path,
) -> None:
    """The SMSC a chaos run starts (operator-sim --smpp): named by an smpp:// URL the
    gateway accepts, failing as told, reporting no receipt, and listing as its
    "references" the id of each message taken (the first part's: the one asking for a
    receipt, as the gateway's are), not a refused one's."""
    sim = chaos.start_smpp_sim(tmp_path, "A", 0.0, 20.0, "0999")
    try:
        assert smpp_url.problem(sim.url) is None
        options = smpp_url.parse(sim.url)
        assert (options.system_id, options.window, options.binds) == (
            chaos.SMPP_SYSTEM_ID, 10, 2)
        taken, refused = asyncio.run(_submit(options.host, options.port, "0912000001",
                                             "0999000001"))
        sim.control(fail_rate=1.0)
        [failed] = asyncio.run(_submit(options.host, options.port, "0912000002"))
        stats = sim.get("/stats")
        references = sim.get("/references")
    finally:
        sim.stop()
    assert (taken.command_status, refused.command_status, failed.command_status) == (
        CommandStatus.ESME_ROK, CommandStatus.ESME_RINVDSTADR, CommandStatus.ESME_RSYSERR)
    assert references == {"accepted": [taken.message_id]}
    assert (stats["accepted"], stats["rejected"], stats["failed"]) == (1, 1, 1)
    assert stats["receipts"]["sent"] == 0  # none=1: never reported
    assert sim.popen.poll() is not None


async def _submit(host: str, port: int, *destinations: str) -> list[SubmitSmResp]:
    async with connected(host, port) as esme:
        bound = await esme.bind(chaos.SMPP_SYSTEM_ID, chaos.SMPP_PASSWORD)
        assert bound.command_status == CommandStatus.ESME_ROK
        return await esme.submit(*[esme.submit_sm(
            source_addr="98100", destination_addr=to, short_message=b"chaos",
            registered_delivery=1) for to in destinations])
