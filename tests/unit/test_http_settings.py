"""The HTTP server's limits are settings, checked like the others."""

from __future__ import annotations

import pytest

from smsgw_app.config import ConfigError, Settings


def test_the_http_limits_have_defaults_and_are_read_from_the_environment() -> None:
    default = Settings.from_env({})
    assert (default.http_request_timeout_s, default.http_idle_timeout_s,
            default.http_max_connections) == (10.0, 5.0, 1000)
    tuned = Settings.from_env({"SMSGW_HTTP_REQUEST_TIMEOUT_S": "2.5",
                               "SMSGW_HTTP_IDLE_TIMEOUT_S": "1",
                               "SMSGW_HTTP_MAX_CONNECTIONS": "3"})
    assert (tuned.http_request_timeout_s, tuned.http_idle_timeout_s,
            tuned.http_max_connections) == (2.5, 1.0, 3)


@pytest.mark.parametrize(("variable", "value"), [
    ("SMSGW_HTTP_REQUEST_TIMEOUT_S", "0"), ("SMSGW_HTTP_REQUEST_TIMEOUT_S", "soon"),
    ("SMSGW_HTTP_IDLE_TIMEOUT_S", "-1"), ("SMSGW_HTTP_MAX_CONNECTIONS", "0"),
    ("SMSGW_HTTP_MAX_CONNECTIONS", "1.5"),
])
def test_a_bad_http_limit_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})
