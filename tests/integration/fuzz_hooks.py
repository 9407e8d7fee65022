"""Schemathesis hooks: a send generated as valid is made by a customer with money.

The OpenAPI document can say what a well-formed send is, not which customers
have a balance: a generated customer id is nobody's, and its send is rightly a
402. So before each send the fuzzer generated as valid, this tops its customer
up through POST /balance/add (the id as generated, so edge ids are sent too),
and the send must then be accepted. Sends generated as invalid are left alone:
their refusal is the point. On /v1 the customer is the key's: the run's
`-H "Authorization: Bearer KEY"` names a customer key, and SMSGW_FUZZ_CUSTOMER
its customer, whom this tops up before each valid POST /v1/messages; an
operator's receipts generated as valid go to SMSGW_FUZZ_OPERATOR, the
operator whose receipt token the run sends. The webhook routes that act on the
customer's endpoint or one of its events get an endpoint (and, for a replay, an
event of it) first, with SMSGW_FUZZ_KEY, the run's customer key.
schemathesis.toml at the project root names this file, so
`schemathesis run URL/swagger/openapi.json` run from there uses it.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis

# More than the dearest send costs: 1,000 recipients, 49 segments, 3 a segment.
TOP_UP = 1_000_000


def _top_up(case: Any, customer: int) -> None:
    # A balance already near its maximum answers 409; it is enough for a send.
    httpx.post(f"{case.operation.schema.get_base_url()}/balance/add",
               json={"user_id": customer, "balance": TOP_UP}, timeout=30)


# A generated call to these finds no endpoint (or event) unless one is made first.
_ON_THE_ENDPOINT = frozenset({"POST /v1/webhook/secret", "POST /v1/webhook/test",
                              "POST /v1/webhook/events/{event_id}/replay"})


def _endpoint(case: Any) -> str:
    """Register the run's customer's endpoint (port 9: refused, so its events stay
    pending) and queue a test event; that event's id."""
    base = case.operation.schema.get_base_url()
    auth = {"Authorization": f"Bearer {os.environ['SMSGW_FUZZ_KEY']}"}
    httpx.put(f"{base}/v1/webhook", headers=auth, timeout=30,
              json={"url": "http://127.0.0.1:9/fuzz", "events": ["message.sent"]})
    queued = httpx.post(f"{base}/v1/webhook/test", headers=auth, timeout=30)
    return str(queued.json().get("id", "none"))


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    if (case.operation.label == "POST /operators/{name}/receipts"
            and os.environ.get("SMSGW_FUZZ_OPERATOR")):
        # The run's token is this operator's: a generated name is nobody's (401).
        case.path_parameters = {**(case.path_parameters or {}),
                                "name": os.environ["SMSGW_FUZZ_OPERATOR"]}
    if case.operation.label in _ON_THE_ENDPOINT and os.environ.get("SMSGW_FUZZ_KEY"):
        event = _endpoint(case)
        if case.operation.label.endswith("/replay"):
            case.path_parameters = {**(case.path_parameters or {}), "event_id": event}
    if case.operation.label == "POST /v1/messages" and os.environ.get("SMSGW_FUZZ_CUSTOMER"):
        _top_up(case, int(os.environ["SMSGW_FUZZ_CUSTOMER"]))
    if case.operation.label != "POST /sms/send":
        return
    customer = case.body.get("customer_id") if isinstance(case.body, dict) else None
    if isinstance(customer, int | float) and not isinstance(customer, bool):
        _top_up(case, int(customer))
