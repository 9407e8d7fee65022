"""The operations surface: the new settings, the metrics token, and CORS only when asked."""

from __future__ import annotations

import time

import pytest
from litestar.testing import AsyncTestClient

from smsgw_app.api.app import ApiServices, create_app
from smsgw_app.api.backpressure import AdmittedSender, BacklogGate
from smsgw_app.config import ConfigError, Settings
from smsgw_core.pricing import Tariff
from smsgw_core.send_limits import Rate
from smsgw_core.services.accounts import Accounts
from smsgw_core.services.authenticate import Authenticator
from smsgw_core.services.customers import Customers
from smsgw_core.services.history import History
from smsgw_core.services.keys import Keys
from smsgw_core.services.send_limit import LimitedSender, SendLimits
from smsgw_core.services.send_sms import SmsSender
from smsgw_core.system import SystemTokens
from smsgw_core.testing import FakeClock, InMemoryDatabase, SequentialIds

TOKEN = "t" * 32
SITE = "https://app.example.com"


def services(**settings: object) -> ApiServices:
    db, clock, ids = InMemoryDatabase(), FakeClock(), SequentialIds()
    return ApiServices(
        AdmittedSender(BacklogGate(0), LimitedSender(SendLimits(db.uow, time.monotonic),
                                                     SmsSender(db.uow, clock, ids, Tariff()))),
        History(db.uow), Accounts(db.uow, clock, ids),
        {}, Authenticator(db.uow, time.monotonic, clock), Customers(db.uow, clock),
        Keys(db.uow, clock, SystemTokens()),
        **settings,  # type: ignore[arg-type]
    )


def test_the_settings_are_read_and_checked() -> None:
    read = Settings.from_env({"SMSGW_CUSTOMER_RATE": "200/s,burst=1000",
                              "SMSGW_METRICS_TOKEN": TOKEN,
                              "SMSGW_CORS_ORIGINS": f"{SITE}, http://localhost:3000"})
    assert read.customer_rate == Rate(200, 1000)
    assert read.metrics_token == TOKEN
    assert read.cors_origins == (SITE, "http://localhost:3000")
    default = Settings.from_env({})
    assert (default.customer_rate, default.metrics_token, default.cors_origins) == (None, "", ())


@pytest.mark.parametrize(("variable", "value"), [
    ("SMSGW_CUSTOMER_RATE", ""), ("SMSGW_CUSTOMER_RATE", "0/s"),
    ("SMSGW_CUSTOMER_RATE", "200/s,burst=x"), ("SMSGW_METRICS_TOKEN", ""),
    ("SMSGW_METRICS_TOKEN", "a b" * 10), ("SMSGW_METRICS_TOKEN", "é" * 20),
    ("SMSGW_CORS_ORIGINS", ""), ("SMSGW_CORS_ORIGINS", "app.example.com"),
    ("SMSGW_CORS_ORIGINS", f"{SITE}/"), ("SMSGW_CORS_ORIGINS", "ftp://x"),
])
def test_a_bad_value_names_its_variable_in_one_line(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable) as refused:
        Settings.from_env({variable: value})
    assert "\n" not in str(refused.value) and (not value.strip() or TOKEN not in str(refused))


async def test_with_a_token_the_metrics_take_it() -> None:
    async with AsyncTestClient(create_app(services(metrics_token=TOKEN))) as client:
        for headers in ({}, {"Authorization": "Bearer " + TOKEN[:-1]},
                        {"Authorization": f"Basic {TOKEN}"}):
            refused = await client.get("/metrics", headers=headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "smsgw_" not in refused.text
        served = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert served.status_code == 200 and "# TYPE" in served.text


async def test_without_a_token_the_metrics_are_open() -> None:
    async with AsyncTestClient(create_app(services())) as client:
        assert (await client.get("/metrics")).status_code == 200


PREFLIGHT = {"Origin": SITE, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type"}


async def test_no_cors_headers_unless_origins_are_named() -> None:
    async with AsyncTestClient(create_app(services())) as client:
        for answer in (await client.options("/v1/messages", headers=PREFLIGHT),
                       await client.get("/healthz", headers={"Origin": SITE})):
            assert not [h for h in answer.headers if h.lower().startswith("access-control-")]


async def test_named_origins_and_only_they_get_cors_headers() -> None:
    app = create_app(services(cors_origins=(SITE,)))
    async with AsyncTestClient(app) as client:
        allowed = await client.options("/v1/messages", headers=PREFLIGHT)
        assert allowed.status_code in (200, 204), allowed.text
        assert allowed.headers["access-control-allow-origin"] == SITE
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        simple = await client.get("/healthz", headers={"Origin": SITE})
        assert simple.headers["access-control-allow-origin"] == SITE
        other = await client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        refused = await client.options("/v1/messages", headers={
            **PREFLIGHT, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in refused.headers


def test_an_operators_cap_is_read_out_of_its_url() -> None:
    operators = Settings.from_env({"SMSGW_OPERATORS": (
        "A=http://op-a:9001/x?tps=200&account=7,B=sim://?latency_ms=5&tps=0.5,C=sim://")
    }).operators
    assert [(o.name, o.url, o.tps) for o in operators] == [
        ("A", "http://op-a:9001/x?account=7", 200.0),
        ("B", "sim://?latency_ms=5", 0.5),
        ("C", "sim://", None),
    ]


@pytest.mark.parametrize("value", ["0", "-5", "fast", "nan", "inf", "2000000"])
def test_a_bad_cap_names_its_operator(value: str) -> None:
    with pytest.raises(ConfigError, match=f"SMSGW_OPERATORS: A: tps={value!r}"):
        Settings.from_env({"SMSGW_OPERATORS": f"A=http://op-a:9001?tps={value}"})
