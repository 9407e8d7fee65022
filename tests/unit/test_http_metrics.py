"""The API's request metrics: counted by route template and status, scrapes not counted."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.exceptions import HTTPException
from litestar.testing import TestClient
from prometheus_client import REGISTRY

from smsgw_app.api.http_metrics import HttpMetrics


@get("/things/{thing_id:str}", sync_to_thread=False)
def thing(thing_id: str) -> str:
    if thing_id == "broken":
        raise HTTPException(status_code=503, detail="down")
    return thing_id


@get("/metrics", sync_to_thread=False)
def metrics() -> str:
    return ""


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"app_name": "smsgw", **labels}) or 0.0


def test_requests_are_counted_by_route_template_and_status() -> None:
    ok = {"method": "GET", "path": "/things/{thing_id}", "status_code": "200"}
    failed = {**ok, "status_code": "503"}
    before = {name: sample(name, **labels) for name, labels in [
        ("smsgw_http_requests_total", ok), ("smsgw_http_requests_total", failed),
        ("smsgw_http_request_duration_seconds_count", ok),
        ("smsgw_http_requests_error_total", failed)]}
    scrapes = sample("smsgw_http_requests_total", method="GET", path="/metrics",
                     status_code="200")
    app = Litestar([thing, metrics], middleware=[HttpMetrics])
    with TestClient(app) as client:
        for name in ("a", "b", "c"):
            assert client.get(f"/things/{name}").status_code == 200
        assert client.get("/things/broken").status_code == 503
        assert client.get("/metrics").status_code == 200

    def moved(name: str, labels: dict[str, str]) -> float:
        return sample(name, **labels) - before[name]

    # One label set for every id: a label per raw path would grow without bound.
    assert sample("smsgw_http_requests_total", method="GET", path="/things/a",
                  status_code="200") == 0
    assert moved("smsgw_http_requests_total", ok) == 3
    assert moved("smsgw_http_request_duration_seconds_count", ok) == 3
    assert moved("smsgw_http_requests_total", failed) == 1
    assert moved("smsgw_http_requests_error_total", failed) == 1
    assert sample("smsgw_http_requests_total", method="GET", path="/metrics",
                  status_code="200") == scrapes
    assert sample("smsgw_http_requests_in_progress", method="GET",
                  path="/things/{thing_id}", status_code="200") == 0
