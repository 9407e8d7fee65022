"""Nothing waits unnoticed: parked events are listed and requeued from the CLI, and a
delivery lost on its way (a purged queue, a worker cut off mid-send) is published
again within its documented bound, then delivered once."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.integration.harness import SMSGW, Gateway, GatewayFactory, wait_until
from tests.integration.helpers import recipients_of, send, transactions

pytestmark = pytest.mark.slow

JANITOR_S = 10  # how often the relay's janitor looks for lost deliveries


def _cli(gateway: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SMSGW, "outbox", *args], env=gateway.env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_parked_events_are_listed_and_requeued_from_the_cli(gateway: Gateway) -> None:
    # A payload that is not a delivery can never be published: the relay parks it.
    gateway.query(
        "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload,"
        " priority, status, attempts, next_run_at, created_at, updated_at)"
        " VALUES ('sms', 'poison-1', 'sms.send', ?, 0, 'pending', 0, NULL,"
        " '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        json.dumps({"sms_identifier": "poison-1"}),
    )
    [(event_id,)] = gateway.query("SELECT id FROM outbox_events WHERE aggregate_id = 'poison-1'")
    wait_until(lambda: gateway.query(
        "SELECT status FROM outbox_events WHERE id = ?", event_id) == [("parked",)], timeout=30)

    listed = _cli(gateway, "list", "--parked")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split("\t")[:2] == ["id", "sms_identifier"]
    [row] = rows
    assert row.split("\t")[:2] == [str(event_id), "poison-1"]
    assert "undecodable payload" in row

    requeued = _cli(gateway, "requeue", str(event_id))
    assert (requeued.returncode, requeued.stdout.strip()) == (0, "requeued 1 parked event(s)")
    # pending again with its attempts from zero; still poison, so parked again
    wait_until(lambda: gateway.query(
        "SELECT status FROM outbox_events WHERE id = ?", event_id) == [("parked",)], timeout=30)
    assert _cli(gateway, "requeue", "--parked").returncode == 0
    missing = _cli(gateway, "requeue", "999999999")
    assert (missing.returncode, missing.stdout.strip()) == (1, "requeued 0 parked event(s)")
    neither = _cli(gateway, "requeue")
    assert neither.returncode == 2 and len(neither.stderr.splitlines()) == 1


def test_the_outbox_cli_on_a_database_it_cannot_use_is_one_line_and_exit_2(
    gateway: Gateway,
) -> None:
    env = {**gateway.env, "SMSGW_DATABASE_URL": "mysql+asyncmy://root:s3cret@127.0.0.1:1/x"}
    result = subprocess.run([*SMSGW, "outbox", "list", "--parked"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr


@pytest.mark.parametrize("mode", ["split"])
def test_a_delivery_lost_from_its_queue_is_published_again(
    make_gateway: GatewayFactory, user_id: int
) -> None:
    # No worker while the SMS is published; then the broker loses the message (purged,
    # as a dead-lettering or a lost queue would). With its queue empty, the janitor
    # publishes it again SMSGW_REDRIVE_AFTER_S after publishing.
    gateway = make_gateway(start=False, SMSGW_REDRIVE_AFTER_S="2")
    gateway.start("api", "relay")
    gateway.top_up(user_id, 10)
    accepted = send(gateway, user_id, ["09120000001", "09120000002"])
    sms = accepted["sms_identifier"]
    wait_until(lambda: gateway.query(
        "SELECT status FROM outbox_events WHERE aggregate_id = ?", sms) == [("published",)])
    queue = gateway.env["SMSGW_NORMAL_QUEUE"]
    purged = subprocess.run(["rabbitmqctl", "purge_queue", queue], capture_output=True,
                            text=True, timeout=60, check=False)
    assert purged.returncode == 0, purged.stderr
    lost_at = time.monotonic()
    gateway.start("worker")

    def settled() -> bool:
        return {s for s, _ in recipients_of(gateway, user_id).values()} == {"DONE"}

    wait_until(settled, timeout=2 + JANITOR_S + 30, every=0.2)
    assert time.monotonic() - lost_at < 2 + JANITOR_S + 15
    assert transactions(gateway, user_id, "refund") == []


@pytest.mark.parametrize("mode", ["split"])
def test_a_recipient_left_sending_is_sent_again_after_its_lease(
    make_gateway: GatewayFactory, user_id: int
) -> None:
    # The worker claims, then dies before its outcome commits (kill -9 mid-send):
    # the recipient stays SENDING until its lease (here 3 s) lapses, then the
    # janitor publishes the SMS again and a worker finishes it, once.
    gateway = make_gateway("A=sim://?latency_ms=3000,B=sim://", SMSGW_DELIVERY_LEASE_S="3")
    gateway.top_up(user_id, 10)
    accepted = send(gateway, user_id, ["09120000001"])
    wait_until(lambda: [s for s, _ in recipients_of(gateway, user_id).values()] == ["SENDING"])
    gateway.kill("worker")
    killed_at = time.monotonic()
    gateway.env["SMSGW_OPERATORS"] = "A=sim://,B=sim://"
    gateway.start("worker")
    rows = gateway.wait_terminal(accepted["sms_identifier"], user_id, timeout=3 + JANITOR_S + 30)
    assert [(r["status"], r["provider"]) for r in rows] == [("done", "A")]
    assert time.monotonic() - killed_at < 3 + JANITOR_S + 15
    assert transactions(gateway, user_id, "refund") == []
