"""The webhook receiver peer (tests/peers/webhook_receiver.py) itself, not the gateway: it
verifies what the standardwebhooks package signs, refuses what it does not, answers as
configured and counts what came."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.peers.webhook_receiver_client import READY, WebhookReceiver, start_receiver


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookReceiver]:
    started = start_receiver(tmp_path_factory.mktemp("webhook-receiver"))
    yield started
    started.stop()


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def signed(msg_id: str, payload: dict[str, Any], *secrets: str) -> tuple[bytes, dict[str, str]]:
    """The body and Standard Webhooks headers of `payload`, signed with each secret."""
    body = json.dumps(payload).encode()
    now = datetime.now(tz=UTC)
    signatures = " ".join(Webhook(secret).sign(msg_id, now, body) for secret in secrets)
    return body, {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
                  "webhook-signature": signatures, "content-type": "application/json"}


async def post(client: httpx.AsyncClient, url: str, msg_id: str, payload: dict[str, Any],
               *secrets: str) -> int:
    body, headers = signed(msg_id, payload, *secrets)
    return (await client.post(url, content=body, headers=headers)).status_code


async def test_verified_deliveries_and_duplicates_are_counted(receiver: WebhookReceiver
                                                              ) -> None:
    secret = new_secret()
    await receiver.configure("counted", secrets=[secret])
    async with httpx.AsyncClient(timeout=5) as client:
        codes = [await post(client, receiver.endpoint("counted"), msg_id, {"sms": msg_id},
                            secret)
                 for msg_id in ("msg_1", "msg_2", "msg_2", "msg_2")]
    assert codes == [200] * 4
    got = await receiver.received("counted")
    assert got["requests"] == 4
    assert got["unverified"] == 0
    assert got["answers"] == {"200": 4}
    assert {msg_id: event["count"] for msg_id, event in got["events"].items()} == {
        "msg_1": 1, "msg_2": 3}
    assert got["events"]["msg_1"]["payload"] == {"sms": "msg_1"}
    requests = await receiver.requests("counted")
    assert [request["verified_by"] for request in requests] == [[secret]] * 4


async def test_a_wrong_signature_is_answered_400_and_unverified(receiver: WebhookReceiver
                                                                ) -> None:
    await receiver.configure("wrong", secrets=[new_secret()])
    async with httpx.AsyncClient(timeout=5) as client:
        assert await post(client, receiver.endpoint("wrong"), "msg_1", {}, new_secret()) == 400
        unsigned = await client.post(receiver.endpoint("wrong"), json={},
                                     headers={"webhook-id": "msg_2"})
        assert unsigned.status_code == 400
    got = await receiver.received("wrong")
    assert (got["requests"], got["unverified"], got["events"]) == (2, 2, {})
    assert got["answers"] == {"400": 2}


async def test_fail_first_then_status(receiver: WebhookReceiver) -> None:
    secret = new_secret()
    await receiver.configure("flaky", secrets=[secret], fail_first=2)
    await receiver.configure("gone", secrets=[secret], status=410)
    async with httpx.AsyncClient(timeout=5) as client:
        flaky = [await post(client, receiver.endpoint("flaky"), "msg_1", {}, secret)
                 for _ in range(3)]
        gone = await post(client, receiver.endpoint("gone"), "msg_1", {}, secret)
    assert flaky == [500, 500, 200]
    assert gone == 410
    got = await receiver.received("flaky")
    assert got["answers"] == {"500": 2, "200": 1}
    assert got["events"]["msg_1"]["count"] == 3
    assert got["events"]["msg_1"]["codes"] == [500, 500, 200]
    assert (await receiver.received("gone"))["answers"] == {"410": 1}


async def test_any_secret_or_each_with_require_all(receiver: WebhookReceiver) -> None:
    old, new = new_secret(), new_secret()
    await receiver.configure("rotating", secrets=[old, new])
    await receiver.configure("both", secrets=[old, new], require_all=True)
    async with httpx.AsyncClient(timeout=5) as client:
        assert await post(client, receiver.endpoint("rotating"), "msg_1", {}, new) == 200
        assert await post(client, receiver.endpoint("both"), "msg_1", {}, new) == 400
        assert await post(client, receiver.endpoint("both"), "msg_2", {}, old, new) == 200
    assert [r["verified_by"] for r in await receiver.requests("rotating")] == [[new]]
    both = await receiver.received("both")
    assert (both["unverified"], list(both["events"])) == (1, ["msg_2"])
    assert [r["verified_by"] for r in await receiver.requests("both")] == [[new], [old, new]]


async def test_hang_never_answers(receiver: WebhookReceiver) -> None:
    secret = new_secret()
    await receiver.configure("stuck", secrets=[secret], hang=True)
    async with httpx.AsyncClient(timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            await post(client, receiver.endpoint("stuck"), "msg_1", {}, secret)
    assert (await receiver.received("stuck"))["answers"] == {"hang": 1}


async def test_unconfigured_paths_and_bad_settings(receiver: WebhookReceiver) -> None:
    async with httpx.AsyncClient(base_url=receiver.url, timeout=5) as client:
        assert (await client.get("/_health")).status_code == 200
        assert (await client.post("/nobody", json={})).status_code == 404
        assert (await client.put("/_config/typo", json={"secret": "whsec_x"})).status_code == 400
        assert (await client.put("/_config/typo", json={"fail_first": "2"})).status_code == 400
    assert (await receiver.received("nobody"))["answers"] == {"404": 1}


def test_runs_as_a_script(tmp_path: Path) -> None:
    """`python tests/peers/webhook_receiver.py`, outside the checkout too."""
    script = Path(__file__).parents[1] / "peers" / "webhook_receiver.py"
    popen = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                             cwd=tmp_path, start_new_session=True)
    receiver = WebhookReceiver(popen, tmp_path / "none.log")
    try:
        assert popen.stdout is not None
        line = popen.stdout.readline().decode()
        assert line.startswith(READY), line
        assert httpx.get(f"{line.split()[-1]}/_health", timeout=5).status_code == 200
    finally:
        receiver.stop()
