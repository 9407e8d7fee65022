"""Which operators may take a recipient: routes by number prefix.

On real networks a number belongs to an operator: a route names, for the
numbers starting with any of its prefixes, the operators that may take them,
in failover order (`0912,+98912 -> MCI,B`). The longest matching prefix wins;
`*` is the default route for the rest. A recipient that matches no route and
has no default cannot be sent at all: it is refused when the SMS is accepted
(400, nothing charged), never failed later.

Without routes every recipient may go to every operator, in the order
SMSGW_OPERATORS lists them (the gateway before routes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from smsgw_core.errors import InvalidRequest

DEFAULT = "*"
_PREFIX = re.compile(r"\+?[0-9]{1,15}")


@dataclass(frozen=True, slots=True)
class Route:
    prefixes: tuple[str, ...]  # "0912", "+98912"; "*" for the default route
    operators: tuple[str, ...]  # in failover order


class RoutesError(ValueError):
    """A route table that cannot be: the message says which part."""


@dataclass(frozen=True)
class Routes:
    """The route table. Built once; `operators_for` is a dictionary walk per recipient."""

    routes: tuple[Route, ...]

    def __post_init__(self) -> None:
        seen: dict[str, Route] = {}
        for route in self.routes:
            if not route.prefixes:
                raise RoutesError(f"={','.join(route.operators)}: names no prefix")
            if not route.operators:
                raise RoutesError(f"{','.join(route.prefixes)}: names no operator")
            if len(set(route.operators)) != len(route.operators):
                raise RoutesError(f"{','.join(route.prefixes)}: an operator named twice")
            for prefix in route.prefixes:
                if prefix != DEFAULT and not _PREFIX.fullmatch(prefix):
                    raise RoutesError(f"{prefix!r}: a prefix is 1-15 digits, an optional "
                                      "leading +, or * for the rest")
                if prefix in seen:
                    raise RoutesError(f"{prefix!r}: in two routes")
                seen[prefix] = route
        object.__setattr__(self, "_by_prefix", {p: r.operators for p, r in seen.items()})
        object.__setattr__(self, "_lengths", sorted(
            {len(p) for p in seen if p != DEFAULT}, reverse=True))

    @classmethod
    def everything_to(cls, operators: Sequence[str]) -> Routes:
        """No routes: every recipient to every operator, in this order."""
        return cls((Route((DEFAULT,), tuple(operators)),))

    @classmethod
    def parse(cls, text: str) -> Routes:
        """`PREFIX[,PREFIX…]=OPERATOR[,OPERATOR…];…`, e.g. `0912,+98912=MCI,B;*=A,B`."""
        routes = []
        for part in (p.strip() for p in text.split(";")):
            if not part:
                continue
            prefixes, sep, operators = part.partition("=")
            if not sep:
                raise RoutesError(f"{part!r} is not PREFIXES=OPERATORS")
            routes.append(Route(_names(prefixes), _names(operators)))
        if not routes:
            raise RoutesError("no route")
        return cls(tuple(routes))

    def operators(self) -> set[str]:
        return {name for route in self.routes for name in route.operators}

    def operators_for(self, recipient: str) -> tuple[str, ...] | None:
        """The operators that may take `recipient`, in failover order; None: no route."""
        by_prefix: dict[str, tuple[str, ...]] = self._by_prefix  # type: ignore[attr-defined]
        for length in self._lengths:  # type: ignore[attr-defined]
            found = by_prefix.get(recipient[:length])
            if found is not None:
                return found
        return by_prefix.get(DEFAULT)

    def check(self, recipients: Iterable[str]) -> None:
        """Raise InvalidRequest naming the recipients no route takes."""
        unrouted = [r for r in recipients if self.operators_for(r) is None]
        if unrouted:
            shown = ", ".join(repr(n) for n in unrouted[:20])
            more = f" and {len(unrouted) - 20} more" if len(unrouted) > 20 else ""
            raise InvalidRequest("recipients", f"no operator serves {shown}{more}")


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())
