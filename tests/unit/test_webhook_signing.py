"""Our webhook signatures, checked by the Standard Webhooks reference library
(PyPI `standardwebhooks`): a verifier we did not write."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from smsgw_adapters.webhooks.signing import SecretError, headers, new_secret, secret_key


def now_s() -> int:
    return int(datetime.now(UTC).timestamp())


@given(st.binary(max_size=2000), st.from_regex(r"msg_[A-Za-z0-9]{1,40}", fullmatch=True))
def test_the_reference_verifier_accepts_our_signature(body: bytes, message_id: str) -> None:
    secret = new_secret()
    signed = headers([secret_key(secret)], message_id, now_s(), body)
    Webhook(secret).verify(body, dict(signed), json_parse=False)  # raises when it does not


def test_a_changed_body_id_or_key_does_not_verify() -> None:
    secret = new_secret()
    body = json.dumps({"type": "message.delivered"}).encode()
    signed = dict(headers([secret_key(secret)], "msg_1", now_s(), body))
    for case in (
        (body + b" ", signed, secret),
        (body, {**signed, "webhook-id": "msg_2"}, secret),
        (body, signed, new_secret()),
    ):
        with pytest.raises(WebhookVerificationError):
            Webhook(case[2]).verify(case[0], case[1], json_parse=False)


def test_during_a_rotation_either_secret_verifies() -> None:
    old, new = new_secret(), new_secret()
    body = b'{"type":"message.sent"}'
    signed = dict(headers([secret_key(new), secret_key(old)], "msg_9", now_s(), body))
    assert len(signed["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(body, signed, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, signed, json_parse=False)


@pytest.mark.parametrize("secret", ["", "abc", "whsec_", "whsec_!!!", "whsec_YWJj=x"])
def test_a_secret_that_is_not_whsec_base64_is_refused(secret: str) -> None:
    with pytest.raises(SecretError):
        secret_key(secret)


def test_a_request_is_signed_with_at_least_one_key() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        headers([], "msg_1", now_s(), b"{}")
