"""The webhook address guard: a table of addresses, URLs, and names that resolve inside."""

from __future__ import annotations

import ipaddress

import pytest

from smsgw_adapters.webhooks.address_guard import AddressRefused, Guard, refused

REFUSED = [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"),
    ("192.168.1.1", "private"), ("fc00::1", "private"), ("fd00:ec2::254", "private"),
    ("169.254.169.254", "link-local"), ("169.254.0.1", "link-local"), ("fe80::1", "link-local"),
    ("100.100.100.200", "shared"), ("100.64.0.1", "shared"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("240.0.0.1", "private"), ("255.255.255.255", "private"),  # Python counts both private
    ("192.0.2.1", "private"), ("198.18.0.1", "private"),  # documentation, benchmarking
    ("::ffff:127.0.0.1", "embeds 127.0.0.1"), ("::ffff:169.254.169.254", "embeds"),
    ("2002:7f00:1::", "embeds 127.0.0.1"), ("64:ff9b::a00:1", "embeds 10.0.0.1"),
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "151.101.1.69", "2606:4700:4700::1111",
           "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_an_address_inside_is_refused_with_its_reason(address: str, why: str) -> None:
    reason = refused(ipaddress.ip_address(address))
    assert reason is not None and why in reason, (address, reason)


@pytest.mark.parametrize("address", ALLOWED)
def test_a_globally_routable_address_is_allowed(address: str) -> None:
    assert refused(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(("url", "problem"), [
    ("http://hooks.example.com/x", "must be https://"),
    ("ftp://hooks.example.com/x", "must be https://"),
    ("https:///x", "names no host"),
    ("https://user:pw@hooks.example.com/x", "credentials"),
    ("https://127.0.0.1/x", "loopback"),
    ("https://[::1]:8443/x", "loopback"),
    ("https://169.254.169.254/latest/meta-data", "link-local"),
    ("https://10.0.0.5/x", "private"),
    ("https://localhost/x", "is this machine"),
    ("https://api.localhost/x", "is this machine"),
    ("https://hooks.example.com:99999/x", "not a URL"),
    ("https://hooks.example.com/" + "x" * 2048, "at most 2048"),
])
def test_a_url_it_will_not_call_is_refused_naming_why(url: str, problem: str) -> None:
    with pytest.raises(AddressRefused, match=problem):
        Guard().check_url(url)


def test_the_settings_open_http_and_private_addresses_for_tests_and_private_networks() -> None:
    assert Guard(allow_http=True).check_url("http://hooks.example.com/x") == (
        "hooks.example.com", 80)
    assert Guard().check_url("https://hooks.example.com/x") == ("hooks.example.com", 443)
    with pytest.raises(AddressRefused, match="loopback"):
        Guard(allow_http=True).check_url("http://127.0.0.1:9000/x")
    assert Guard(allow_http=True, allow_private=True).check_url(
        "http://127.0.0.1:9000/x") == ("127.0.0.1", 9000)


async def test_a_name_that_resolves_inside_is_refused_when_resolved() -> None:
    guard = Guard()
    # Names the machine resolves without a network: the loopback name, and an
    # IPv4 address spelled as one decimal number (inet_aton reads it as 127.0.0.1).
    for name in ("localhost", "2130706433"):
        with pytest.raises(AddressRefused, match="loopback"):
            await guard.resolve(name, 443)
    with pytest.raises(AddressRefused, match="does not resolve"):
        await guard.resolve("no-such-host.invalid", 443)
    assert await Guard(allow_private=True).resolve("localhost", 443)
    assert await guard.resolve("8.8.8.8", 443) == [ipaddress.ip_address("8.8.8.8")]
