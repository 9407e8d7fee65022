"""Standard Webhooks signatures: what a customer's verifier checks.

Per the specification (standardwebhooks.com), a request carries
`webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`:
space-separated `v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}` under
the endpoint's secret, which is shown to the customer as `whsec_<base64>`.
Several signatures may stand side by side: while a rotated secret's grace
period lasts, a request is signed with the old one and the new one, and a
receiver holding either verifies it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping

PREFIX = "whsec_"
SECRET_BYTES = 32  # 256 bits, what HMAC-SHA256 takes whole


class SecretError(ValueError):
    """Not a `whsec_<base64>` secret."""


def new_secret() -> str:
    """A fresh endpoint secret, as the customer sees it once."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_…` secret stands for."""
    if not secret.startswith(PREFIX):
        raise SecretError(f"a webhook secret starts with {PREFIX}")
    try:
        key = base64.b64decode(secret[len(PREFIX):], validate=True)
    except ValueError:
        raise SecretError("a webhook secret is whsec_ and base64") from None
    if not key:
        raise SecretError("a webhook secret is not empty")
    return key


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of a request."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(keys: Iterable[bytes], message_id: str, timestamp: int, body: bytes,
            ) -> Mapping[str, str]:
    """The three headers of a request, signed with each key (the newest first)."""
    signatures = [signature(key, message_id, timestamp, body) for key in keys]
    if not signatures:
        raise ValueError("a webhook request is signed with at least one key")
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(signatures)}
