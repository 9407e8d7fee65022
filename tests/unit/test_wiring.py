"""The chains the container builds, and docs/architecture.md's drawing of them.

The drawing is the block between the `wiring` markers of the architecture page:
this test builds the container (nothing started, nothing connected) and walks
each chain of decorators from the outside in, so the page cannot drift from
the code. On a difference it prints the block the page must hold.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from smsgw_app.config import Settings
from smsgw_app.container import Container
from smsgw_core.services.deliver import Deliverer

ARCHITECTURE = Path(__file__).parents[2] / "docs" / "architecture.md"
BLOCK = re.compile(r"<!-- wiring -->\n```\n(.*?)```\n<!-- end of wiring -->", re.S)
# An operator of each kind, one of them capped: every decorator the container has.
OPERATORS = "A=http://operator-a.example:9001?tps=100,B=sim://"


def chain(outermost: Any) -> list[str]:
    """The class names from `outermost` inwards, through each decorator's `inner`
    (the sender chain's group commit names its use case `sender`)."""
    names, here = [], outermost
    while here is not None:
        names.append(type(here).__name__)
        here = getattr(here, "inner", None) or getattr(here, "sender", None)
    return names


async def drawn(settings: Settings) -> str:
    container = Container(settings=settings)
    deliverer = container.deliverer()
    await container.http_client().close()  # made in this loop for the HTTP operator
    assert isinstance(deliverer, Deliverer)
    operators = [chain(operator) for operator in deliverer.operators]
    assert [o.name for o in deliverer.operators] == ["A", "B"]
    lines = {
        "POST /sms/send, POST /v1/messages": chain(container.sender()),
        "each try of a recipient": chain(deliverer.breaker),
        "operator A (http, tps=)": operators[0],
        "operator B (sim)": operators[1],
    }
    width = max(map(len, lines))
    return "".join(f"{what:<{width}}  {' → '.join(names)}\n" for what, names in lines.items())


async def test_the_architecture_page_draws_the_chains_the_container_builds(
        tmp_path: Path) -> None:
    settings = Settings.from_env({
        "SMSGW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'wiring.db'}",
        "SMSGW_OPERATORS": OPERATORS,
    })
    expected = await drawn(settings)
    found = BLOCK.search(ARCHITECTURE.read_text())
    assert found is not None, "docs/architecture.md has no <!-- wiring --> block"
    assert found.group(1) == expected, f"docs/architecture.md's wiring block must read:\n{expected}"


def test_the_sender_chain_refuses_in_order(tmp_path: Path) -> None:
    # The gate first (503 before anything is counted), then the customer's limit
    # (429 before anything is written), then the group commit around the use case.
    settings = Settings.from_env({
        "SMSGW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'wiring.db'}"})
    assert chain(Container(settings=settings).sender()) == [
        "AdmittedSender", "LimitedSender", "GroupCommit", "SmsSender"]
