"""The webhook receiver the integration tests point the gateway's status webhooks at.

A standalone aiohttp server on 127.0.0.1 that checks each delivery's Standard Webhooks
signature with the reference verifier nobody here wrote (PyPI `standardwebhooks`), answers
as the test told it to, and remembers what came, in memory only:

    python -m tests.peers.webhook_receiver --port 0     # from the checkout, or
    python tests/peers/webhook_receiver.py --port 0

prints `listening on http://127.0.0.1:PORT` once it listens (what a test reads the port
from: tests/peers/webhook_receiver_client.py starts it so). Each endpoint is a path
`/<name>`, one per test customer, set up by the test before use:

- `PUT /_config/<name>` {"secrets": ["whsec_…"], "require_all": false, "fail_first": 0,
  "fail_status": 500, "status": 200, "hang": false}, every key optional (those defaults):
  a delivery verifies if ANY secret verifies it (a rotation signs with old and new side by
  side), or with require_all if EACH does; the first `fail_first` verified deliveries after
  this PUT are answered `fail_status`, later ones `status`; `hang` answers verified ones
  never (until the client goes). A PUT replaces the settings and restarts the fail_first
  count; what the path received is kept. Answers the settings.
- `POST /<name>`: a delivery. One that does not verify (or an unconfigured path's) is
  answered 400 (404) and counted as unverified; every one is recorded.
- `GET /_received/<name>`: {"requests": N, "unverified": N, "events": {webhook-id:
  {"count": k, "payload": {…}, "first_at": t, "last_at": t, "codes": [500, 200]}},
  "answers": {"200": n, "500": n, "hang": n, …}}; events holds verified deliveries only,
  count being how many times that webhook-id came (duplicates, retries); times are Unix
  seconds of arrival.
- `GET /_requests/<name>`: {"requests": [{"id", "timestamp", "verified", "verified_by"
  (the secrets that verified it), "payload", "code" (an int, or "hang"), "at"}, …]} in
  arrival order.
- `GET /_health`: 200.

It imports nothing of the project's (so it runs as a plain script) and does no disk I/O
per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

HOST = "127.0.0.1"
HANG = "hang"  # the answer recorded for a request held until the client went
SETTINGS = {"secrets": list, "require_all": bool, "fail_first": int, "fail_status": int,
            "status": int, "hang": bool}


@dataclass
class Endpoint:
    """One path's settings (from its last PUT) and everything it received."""

    secrets: list[str] = field(default_factory=list)
    require_all: bool = False
    fail_first: int = 0
    fail_status: int = 500
    status: int = 200
    hang: bool = False
    configured: bool = False  # by a PUT: an endpoint only POSTed to answers 404
    verifiers: list[Webhook] = field(default_factory=list)
    verified_count: int = 0  # verified deliveries since the last PUT: fail_first's count
    records: list[dict[str, Any]] = field(default_factory=list)

    def settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SETTINGS}

    def verified_by(self, body: bytes, headers: dict[str, str]) -> list[str]:
        """The secrets whose signature is among the request's."""
        passed = []
        for secret, verifier in zip(self.secrets, self.verifiers, strict=True):
            try:
                verifier.verify(body, headers, json_parse=False)
            except WebhookVerificationError:
                continue
            passed.append(secret)
        return passed

    def summary(self) -> dict[str, Any]:
        events: dict[str, dict[str, Any]] = {}
        answers: dict[str, int] = {}
        unverified = 0
        for record in self.records:
            answers[str(record["code"])] = answers.get(str(record["code"]), 0) + 1
            if not record["verified"]:
                unverified += 1
                continue
            event = events.setdefault(record["id"], {
                "count": 0, "payload": record["payload"], "first_at": record["at"],
                "codes": []})
            event["count"] += 1
            event["last_at"] = record["at"]
            event["codes"].append(record["code"])
        return {"requests": len(self.records), "unverified": unverified, "events": events,
                "answers": answers}


def configured(settings: Any) -> Endpoint:
    """The endpoint a PUT's JSON describes; ValueError if it describes none."""
    if not isinstance(settings, dict):
        raise ValueError("the settings are a JSON object")
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; known: {sorted(SETTINGS)}")
    for name, value in settings.items():
        kind = SETTINGS[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"{name} is a {kind.__name__}, not {value!r}")
    endpoint = Endpoint(**settings, configured=True)
    if not all(isinstance(secret, str) for secret in endpoint.secrets):
        raise ValueError("secrets are strings (whsec_…)")
    for code in (endpoint.status, endpoint.fail_status):
        if not 200 <= code <= 599:
            raise ValueError(f"no answer {code}: 200 to 599")
    try:
        endpoint.verifiers = [Webhook(secret) for secret in endpoint.secrets]
    except Exception as error:
        raise ValueError(f"a secret is not a Standard Webhooks secret: {error}") from error
    return endpoint


def parsed(body: bytes) -> Any:
    """The body's JSON, else its text."""
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")


class Receiver:
    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/_health", self.health)
        app.router.add_put("/_config/{name}", self.configure)
        app.router.add_get("/_received/{name}", self.received)
        app.router.add_get("/_requests/{name}", self.requests)
        app.router.add_post("/{name}", self.deliver)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def configure(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            endpoint = configured(await request.json())
        except ValueError as error:  # json.JSONDecodeError included
            return web.Response(status=400, text=str(error))
        if (before := self.endpoints.get(name)) is not None:
            endpoint.records = before.records
        self.endpoints[name] = endpoint
        return web.json_response(endpoint.settings())

    def _endpoint(self, request: web.Request) -> Endpoint:
        name = request.match_info["name"]
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            raise web.HTTPNotFound(text=f"no endpoint {name!r}: PUT /_config/{name} first")
        return endpoint

    async def received(self, request: web.Request) -> web.Response:
        return web.json_response(self._endpoint(request).summary())

    async def requests(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": self._endpoint(request).records})

    async def deliver(self, request: web.Request) -> web.Response:
        at = time.time()
        body = await request.read()
        headers = {key.lower(): value for key, value in request.headers.items()}
        endpoint = self.endpoints.setdefault(request.match_info["name"], Endpoint())
        passed = endpoint.verified_by(body, headers)
        verified = bool(passed) and (not endpoint.require_all
                                     or len(passed) == len(endpoint.secrets))
        stamp = headers.get("webhook-timestamp")
        record: dict[str, Any] = {
            "id": headers.get("webhook-id"),
            "timestamp": int(stamp) if stamp is not None and stamp.isdigit() else stamp,
            "verified": verified, "verified_by": passed, "payload": parsed(body), "at": at}
        endpoint.records.append(record)
        if not endpoint.configured:
            record["code"] = 404
            return web.Response(status=404, text="no such endpoint: PUT /_config/<name> first")
        if not verified:
            record["code"] = 400
            return web.Response(status=400, text="the signature does not verify")
        if endpoint.hang:
            record["code"] = HANG
            await asyncio.Event().wait()  # cancelled when the client goes (or at exit)
        endpoint.verified_count += 1
        code = (endpoint.fail_status if endpoint.verified_count <= endpoint.fail_first
                else endpoint.status)
        record["code"] = code
        return web.Response(status=code, text=str(code))


async def serve(port: int) -> None:
    runner = web.AppRunner(Receiver().app(), access_log=None, handler_cancellation=True,
                           shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, port)
        await site.start()
        bound = runner.addresses[0][1]
        print(f"listening on http://{HOST}:{bound}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="0 (the default): a free one")
    asyncio.run(serve(parser.parse_args(argv).port))


if __name__ == "__main__":
    main()
