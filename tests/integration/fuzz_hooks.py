"""Schemathesis hooks for test_fuzz_document: valid sends come from funded customers.

The document can say what a well-formed send is, not which customers have
money: a generated customer id is nobody's, and its send is rightly a 402. So
a send the fuzzer generated as valid is given one of the customers the test
topped up (SMSGW_FUZZ_CUSTOMERS), and must then be accepted. Sends generated
as invalid are left as they are: their refusal is the point.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

FUNDED = [int(x) for x in os.environ.get("SMSGW_FUZZ_CUSTOMERS", "").split(",") if x]


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    meta = case.meta
    if (case.operation.label != "POST /sms/send" or meta is None
            or not meta.generation.mode.is_positive or not FUNDED):
        return
    body = case.body
    customer = body.get("customer_id") if isinstance(body, dict) else None
    if isinstance(customer, int | float) and not isinstance(customer, bool):
        # In the spelling generated (a whole number may come as 963.0).
        body["customer_id"] = type(customer)(FUNDED[int(customer) % len(FUNDED)])
