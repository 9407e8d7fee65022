"""An SMPP operator's URL: where its SMSC is, how to bind, and how to address messages.

    smpp://SYSTEM_ID:PASSWORD@HOST[:PORT][?option=value&...]     (smpps:// over TLS)

SYSTEM_ID (at most 15 characters) and PASSWORD (at most 8) are what the bind
sends; write a character that URLs reserve as %XX. PORT defaults to 2775 (smpp)
or 3550 (smpps). `smpps://` wraps the TCP connection in TLS, checked against
the system's certificate authorities. The options, each optional:

    system_type=     the bind's system_type, at most 12 characters (default empty)
    window=10        submit_sm per bind sent and not answered yet, at most (1-1000)
    binds=1          binds to the SMSC (1-32); sends go to the live bind with the
                     fewest submit_sm outstanding
    bind=transceiver how to bind: `transceiver` (one bind sends and receives) or
                     `transmitter+receiver` (each of the `binds` is a transmitter
                     for submit_sm plus a receiver for deliver_sm)
    source=          the sender (source_addr): `+` and digits (international), digits,
                     or at most 11 letters and digits (alphanumeric); empty: the
                     SMSC's default sender
    source_ton=, source_npi=, dest_ton=, dest_npi=
                     the type of number and numbering plan (0-255) of every source
                     or destination address, when the SMSC wants fixed ones; by
                     default each is read from the address (`addresses`)
    enquire_link_s=30  seconds without a PDU from the SMSC before an enquire_link
                     asks whether the link lives (1-3600); no answer within 10 s
                     and the link is dropped and bound again
    receipt_zone=UTC the zone the SMSC writes receipt dates in: `UTC`, an offset
                     (`+03:30`, `-0500`) or an IANA name (`Asia/Tehran`)

`tps=` and `receipt_token=` are the gateway's (SMSGW_OPERATORS reads them out
before an operator's kind sees its URL), not the SMSC's. A `+` in a value is a
plus, not a space (`source=+9810001`, `bind=transmitter+receiver`).

Addresses, when the URL does not fix their TON/NPI: `+` then digits is
international (TON 1, NPI 1 E.164), sent without the `+`; digits alone are of
unknown type (TON 0, NPI 1 E.164: the SMSC reads a local or short number by
its own plan); anything else is alphanumeric (TON 5, NPI 0).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, timedelta, timezone, tzinfo
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SCHEMES = ("smpp", "smpps")
DEFAULT_PORTS = {"smpp": 2775, "smpps": 3550}
URL_FORM = "smpp(s)://SYSTEM_ID:PASSWORD@HOST[:PORT][?window=&binds=&bind=&source=&...]"

TON_UNKNOWN, TON_INTERNATIONAL, TON_ALPHANUMERIC = 0, 1, 5
NPI_UNKNOWN, NPI_E164 = 0, 1


class BindPlan(enum.Enum):
    TRANSCEIVER = "transceiver"
    TRANSMITTER_RECEIVER = "transmitter+receiver"


class UrlProblem(ValueError):
    """What is wrong with an SMPP URL, in one line (a configuration error)."""


@dataclass(frozen=True, slots=True)
class Address:
    ton: int
    npi: int
    addr: str


_INTERNATIONAL = re.compile(r"\+[0-9]{1,20}")
_DIGITS = re.compile(r"[0-9]{1,20}")
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9 ._-]{1,11}")


def address(number: str, ton: int | None = None, npi: int | None = None) -> Address:
    """`number` as SMPP addresses it: its TON/NPI read from its form (the module's rule)
    unless fixed; a leading `+` is dropped either way."""
    if _INTERNATIONAL.fullmatch(number):
        read = Address(TON_INTERNATIONAL, NPI_E164, number[1:])
    elif _DIGITS.fullmatch(number):
        read = Address(TON_UNKNOWN, NPI_E164, number)
    else:
        read = Address(TON_ALPHANUMERIC, NPI_UNKNOWN, number)
    return Address(read.ton if ton is None else ton, read.npi if npi is None else npi, read.addr)


@dataclass(frozen=True, slots=True, kw_only=True)
class SmppOptions:
    host: str
    port: int
    tls: bool
    system_id: str
    password: str = field(repr=False)
    system_type: str = ""
    window: int = 10
    binds: int = 1
    bind: BindPlan = BindPlan.TRANSCEIVER
    source: str = ""
    source_ton: int | None = None
    source_npi: int | None = None
    dest_ton: int | None = None
    dest_npi: int | None = None
    enquire_link_s: float = 30.0
    receipt_zone: tzinfo = UTC

    def source_address(self) -> Address:
        if not self.source:  # the SMSC's default sender
            return Address(self.source_ton or 0, self.source_npi or 0, "")
        return address(self.source, self.source_ton, self.source_npi)

    def destination(self, recipient: str) -> Address:
        return address(recipient, self.dest_ton, self.dest_npi)


def _count(low: int, high: int) -> Callable[[str], int]:
    def read(value: str) -> int:
        if not value.isdigit() or not low <= int(value) <= high:
            raise UrlProblem(f"expected a whole number from {low} to {high}")
        return int(value)
    return read


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 1 <= seconds <= 3600:
        raise UrlProblem("expected seconds from 1 to 3600")
    return seconds


def _bind_plan(value: str) -> BindPlan:
    try:
        return BindPlan(value.lower().replace(" ", "+"))
    except ValueError:
        raise UrlProblem("expected transceiver or transmitter+receiver") from None


def _source(value: str) -> str:
    if value and not (_INTERNATIONAL.fullmatch(value) or _DIGITS.fullmatch(value)
                      or _ALPHANUMERIC.fullmatch(value)):
        raise UrlProblem("expected +digits, digits (at most 20) or at most 11 letters "
                         "and digits")
    return value


_OFFSET = re.compile(r"([+-])([01][0-9]|2[0-3]):?([0-5][0-9])")


def _zone(value: str) -> tzinfo:
    if value.upper() in ("UTC", "Z"):
        return UTC
    if offset := _OFFSET.fullmatch(value):
        sign = 1 if offset.group(1) == "+" else -1
        return timezone(sign * timedelta(hours=int(offset.group(2)),
                                         minutes=int(offset.group(3))))
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise UrlProblem("expected UTC, an offset such as +03:30, or a zone such as "
                         "Asia/Tehran") from None


_OPTIONS: dict[str, Callable[[str], object]] = {
    "system_type": lambda value: _cstring(value, 12, "system_type"),
    "window": _count(1, 1000),
    "binds": _count(1, 32),
    "bind": _bind_plan,
    "source": _source,
    "source_ton": _count(0, 255),
    "source_npi": _count(0, 255),
    "dest_ton": _count(0, 255),
    "dest_npi": _count(0, 255),
    "enquire_link_s": _seconds,
    "receipt_zone": _zone,
}


def _cstring(value: str, most: int, what: str) -> str:
    if len(value) > most or not value.isascii() or not value.isprintable():
        raise UrlProblem(f"{what}: expected at most {most} printable ASCII characters")
    return value


def query_params(query: str) -> list[tuple[str, str]]:
    """The query's (key, value) pairs, %XX decoded and `+` kept a plus."""
    pairs = []
    for item in query.split("&"):
        if item:
            key, _, value = item.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


def parse(url: str) -> SmppOptions:
    """The options of an smpp:// or smpps:// URL; UrlProblem says what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise UrlProblem(f"the scheme is {parts.scheme!r}, not smpp or smpps")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise UrlProblem("the port is not a number from 1 to 65535") from None
    if not host:
        raise UrlProblem("no host")
    if parts.path not in ("", "/"):
        raise UrlProblem("an SMPP URL has no path")
    system_id = _cstring(unquote(parts.username or ""), 15, "system_id (the URL's user)")
    password = _cstring(unquote(parts.password or ""), 8, "password")
    if not system_id:
        raise UrlProblem("no system_id (the URL's user)")
    options: dict[str, object] = {}
    for key, value in query_params(parts.query):
        read = _OPTIONS.get(key)
        if read is None:
            raise UrlProblem(f"unknown option {key!r} (known: {', '.join(_OPTIONS)})")
        try:
            options[key] = read(value)
        except UrlProblem as problem:
            raise UrlProblem(f"{key}={value!r}: {problem}") from None
    return SmppOptions(
        host=host, port=port or DEFAULT_PORTS[parts.scheme], tls=parts.scheme == "smpps",
        system_id=system_id, password=password, **options,  # type: ignore[arg-type]
    )


def problem(url: str) -> str | None:
    """What is wrong with an SMPP URL, in one line; None when nothing is."""
    try:
        parse(url)
    except UrlProblem as found:
        return str(found)
    return None
