"""/healthz (the process lives) and /readyz (it can do its work)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from smsgw_app.api.schemas import HealthResponse, NotReadyResponse

log = logging.getLogger("smsgw.health")

# name -> coroutine answering None when healthy, or why not
ReadinessCheck = Callable[[], Awaitable[str | None]]
CHECK_TIMEOUT_S = 3.0  # an unreachable host must not hold /readyz past a probe's timeout


@get("/healthz", operation_id="healthz", summary="Liveness", include_in_schema=True)
async def healthz() -> HealthResponse:
    return HealthResponse("ok")


@get("/readyz", operation_id="readyz",
     summary="Readiness: database reachable and migrated, broker connected",
     responses={
         200: ResponseSpec(HealthResponse, description="Every check passes",
                           generate_examples=False),
         503: ResponseSpec(NotReadyResponse, description="A check fails: its reason",
                           generate_examples=False),
     })
async def readyz(readiness_checks: dict[str, ReadinessCheck]) -> Response[Any]:
    checks: dict[str, str] = {}
    for name, check in readiness_checks.items():
        try:
            problem = await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        except TimeoutError:
            problem = f"no answer within {CHECK_TIMEOUT_S:g} s"
        except Exception as exc:  # a check that blows up is a failing check
            reason = str(exc).splitlines()[0] if str(exc) else ""  # no SQL, no links
            problem = f"{type(exc).__name__}: {reason}"
        checks[name] = problem or "ok"
    failing = [name for name, result in checks.items() if result != "ok"]
    if failing:
        log.warning("not ready: %s", checks)
        refusal = NotReadyResponse(f"not ready: {', '.join(failing)}", checks)
        return Response(refusal, status_code=HTTP_503_SERVICE_UNAVAILABLE)
    return Response(HealthResponse("ready", checks), status_code=HTTP_200_OK)
