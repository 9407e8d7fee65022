"""The kinds of upstream operator, by the scheme of their URL in SMSGW_OPERATORS.

The one place a kind of operator is added (SMPP is the `smpp`/`smpps` rows of
`KINDS`): each kind checks its URL when the settings are read (a bad one is a
configuration error, one line and exit 2, before anything starts) and builds
its adapter when the container asks. What wraps every operator (the delivery
log, the throughput cap) is the container's, whatever the kind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from smsgw_adapters.operators.simulated import Behaviour, BehaviourError, SimulatedOperator
from smsgw_adapters.operators.smpp import url as smpp_url
from smsgw_core.ports import Operator, ReceiptSink

if TYPE_CHECKING:
    import aiohttp


@dataclass(frozen=True, slots=True)
class OperatorSpec:
    """One operator of SMSGW_OPERATORS: its name and URL, and our cap on its rate."""

    name: str
    url: str  # without the tps parameter, which is ours, not the operator's
    tps: float | None = None  # sends per second at most, over every worker process
    # What the operator must send as `Authorization: Bearer …` with its receipts
    # (POST /operators/NAME/receipts); empty: this operator's receipts are refused.
    receipt_token: str = field(default="", repr=False)

    def __repr__(self) -> str:  # the URL's password (SMPP's) never in a log line
        shown = self.url
        parts = urlsplit(self.url)
        if parts.password is not None:
            shown = self.url.replace(f":{parts.password}@", ":***@", 1)
        return f"OperatorSpec(name={self.name!r}, url={shown!r}, tps={self.tps!r})"

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    def params(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.url).query).items()}


log = logging.getLogger("smsgw")


class OperatorLinks:
    """The connections operators keep open in the process (an SMPP operator's binds):
    each adapter that keeps one adds its close here, and the process closes them all
    at its end (assembly.closing, after its services stopped)."""

    def __init__(self) -> None:
        self._closes: list[Callable[[], Awaitable[None]]] = []

    def add(self, close: Callable[[], Awaitable[None]]) -> None:
        self._closes.append(close)

    async def close(self) -> None:
        closes, self._closes = self._closes, []
        for failed in await asyncio.gather(*(close() for close in closes),
                                           return_exceptions=True):
            if isinstance(failed, BaseException):
                log.warning("an operator's connection did not close cleanly: %r", failed)


@dataclass(frozen=True, slots=True)
class OperatorTools:
    """What the process shares among its operators' adapters."""

    http_client: aiohttp.ClientSession
    timeout_s: float  # SMSGW_OPERATOR_TIMEOUT_S
    receipts: ReceiptSink | None = None  # where receipts an adapter gets go (None: nowhere)
    links: OperatorLinks = field(default_factory=OperatorLinks)  # closed at the process's end


@dataclass(frozen=True, slots=True)
class OperatorKind:
    url_form: str  # how the URL is written, for the configuration error
    problem: Callable[[OperatorSpec], str | None]  # what is wrong with the URL, if anything
    build: Callable[[OperatorSpec, OperatorTools], Operator]


def _http_problem(spec: OperatorSpec) -> str | None:
    return None if urlsplit(spec.url).hostname else "no host"


def _http_operator(spec: OperatorSpec, tools: OperatorTools) -> Operator:
    # Imported when built: every command reads the settings, few build an operator.
    from smsgw_adapters.operators.http import HttpOperator

    return HttpOperator(spec.name, spec.url, tools.http_client, tools.timeout_s)


def _simulated_problem(spec: OperatorSpec) -> str | None:
    try:
        Behaviour.parse(spec.params())
    except BehaviourError as exc:
        return str(exc)
    return None


def _simulated_operator(spec: OperatorSpec, tools: OperatorTools) -> Operator:
    # Its receipts (sim://?receipts=…) go where an SMPP session's would: the intake.
    return SimulatedOperator.behaving(spec.name, Behaviour.parse(spec.params()),
                                      sink=tools.receipts)


def _smpp_operator(spec: OperatorSpec, tools: OperatorTools) -> Operator:
    from smsgw_adapters.operators.smpp.operator import SmppOperator

    operator = SmppOperator.from_url(spec.name, spec.url, timeout_s=tools.timeout_s,
                                     receipts=tools.receipts)
    operator.start()  # binds now, in the process's loop: receipts flow before any send
    tools.links.add(operator.close)
    return operator


_HTTP = OperatorKind("http(s)://HOST[:PORT]", _http_problem, _http_operator)
# SMPP 3.4 to an SMSC (smpps: over TLS); its URL's options: smpp/url.py.
_SMPP = OperatorKind(smpp_url.URL_FORM, lambda spec: smpp_url.problem(spec.url), _smpp_operator)

KINDS: Mapping[str, OperatorKind] = {
    "http": _HTTP,
    "https": _HTTP,
    # In this process, no server: the embedded default and tests (docs/operators.md).
    "sim": OperatorKind("sim://[?params]", _simulated_problem, _simulated_operator),
    "smpp": _SMPP,
    "smpps": _SMPP,
}


def url_forms() -> str:
    """The URL forms of every kind, for an error naming what is expected."""
    return " or ".join(dict.fromkeys(kind.url_form for kind in KINDS.values()))


def build_operator(spec: OperatorSpec, tools: OperatorTools) -> Operator:
    return KINDS[spec.scheme].build(spec, tools)
