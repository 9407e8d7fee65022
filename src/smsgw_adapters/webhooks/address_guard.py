"""Where a customer's webhook may point: not at us, our network, or a cloud's metadata.

A webhook URL is the customer's, and the gateway sends to it from inside the
operator's network: left unchecked it would let a customer make the gateway
call its own admin ports, a database, or a cloud's metadata service (which
hands out credentials) — server-side request forgery. So a URL must be
`https://` (`http://` only where allowed, for tests and private networks),
carry no credentials, and every address its host resolves to must be
globally routable: not loopback, private, link-local (169.254.169.254, the
metadata address of AWS, GCP and Azure, is one), shared (100.64.0.0/10, where
Alibaba's metadata lives), multicast, reserved or unspecified, nor an IPv6
address that embeds such an IPv4 address (mapped, 6to4, NAT64). The check
is made when the URL is registered and again on every connection (the name
may resolve elsewhere by then), and the connection goes to an address that
was checked, never to a second lookup's.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT; Alibaba's metadata
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(ValueError):
    """A webhook URL or address the gateway will not call; the message says why."""


class Unresolved(AddressRefused):
    """A name that resolves to nothing now: no connection can be made, but nothing
    says the name is wrong (its DNS may not be published yet)."""


@dataclass(frozen=True, slots=True)
class Guard:
    allow_http: bool = False  # SMSGW_WEBHOOK_ALLOW_HTTP
    allow_private: bool = False  # SMSGW_WEBHOOK_ALLOW_PRIVATE

    def check_url(self, url: str) -> tuple[str, int]:
        """The host and port of an acceptable URL; AddressRefused naming what is wrong.
        The same URL is checked once (it depends on nothing else); parsing it was a
        tenth of a webhook attempt's CPU."""
        return _checked_url(self, url)

    def _check_url(self, url: str) -> tuple[str, int]:
        if len(url) > MAX_URL_LENGTH:
            raise AddressRefused(f"at most {MAX_URL_LENGTH} characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise AddressRefused(f"not a URL: {exc}") from None
        schemes = ("https", "http") if self.allow_http else ("https",)
        if parts.scheme not in schemes:
            raise AddressRefused(f"must be {' or '.join(s + '://' for s in schemes)}")
        if not parts.hostname:
            raise AddressRefused("names no host")
        if parts.username is not None or parts.password is not None:
            raise AddressRefused("must not carry credentials")
        host = parts.hostname
        literal = _literal(host)
        if literal is not None:
            self.check_address(literal)
        elif not self.allow_private and (host == "localhost" or host.endswith(".localhost")):
            raise AddressRefused(f"{host}: is this machine")
        return host, port or (443 if parts.scheme == "https" else 80)

    def check_address(self, address: IpAddress) -> None:
        if self.allow_private:
            return
        why = refused(address)
        if why is not None:
            raise AddressRefused(f"{address}: {why}")

    async def resolve(self, host: str, port: int) -> list[IpAddress]:
        """Every address `host` resolves to, each checked: one refused refuses all (a
        name that also points inside must not be used at all)."""
        literal = _literal(host)
        if literal is not None:
            self.check_address(literal)
            return [literal]
        loop = asyncio.get_running_loop()
        try:
            found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except UnicodeError:  # a label empty or over 63 characters: no name at all
            raise AddressRefused(f"{host[:80]}: not a host name") from None
        except OSError as exc:
            raise Unresolved(f"{host}: does not resolve ({exc})") from None
        addresses = list(dict.fromkeys(
            ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found))
        for address in addresses:
            self.check_address(address)
        if not addresses:
            raise Unresolved(f"{host}: resolves to no address")
        return addresses


@dataclass(frozen=True, slots=True)
class GuardedAddresses:
    """The WebhookAddresses port: the guard's word on a URL as it is registered, so a
    customer hears at once what every later send would be refused for. A name that
    does not resolve yet is taken (its DNS may come later; every connection checks
    again); one that resolves inside is not."""

    guard: Guard = field(default_factory=Guard)

    async def refused(self, url: str) -> str | None:
        try:
            host, port = self.guard.check_url(url)
            await self.guard.resolve(host, port)
        except Unresolved:
            return None
        except AddressRefused as exc:
            return str(exc)
        return None


@functools.lru_cache(maxsize=1 << 14)  # an endpoint each, for many customers
def _checked_url(guard: Guard, url: str) -> tuple[str, int]:
    return guard._check_url(url)  # what raises is not kept: checked again each time


def refused(address: IpAddress) -> str | None:
    """Why the gateway must not call `address`, or None when it is globally routable."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        why = refused(embedded)
        return f"embeds {embedded}, {why}" if why is not None else None
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local (where cloud metadata services answer)"
    if address.version == 4 and address in _SHARED:
        return "shared address space (carrier-grade NAT, a cloud's metadata)"
    if address.is_private:
        return "private"
    if address.is_multicast:
        return "multicast"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "not globally routable"
    return None


def _embedded_ipv4(address: IpAddress) -> ipaddress.IPv4Address | None:
    if address.version != 6:
        return None
    assert isinstance(address, ipaddress.IPv6Address)
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
