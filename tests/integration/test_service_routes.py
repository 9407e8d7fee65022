"""Swagger, OpenAPI, metrics, health, 404s and 500s over real HTTP."""

from __future__ import annotations

import re

from tests.integration.harness import Gateway

ROUTES = {
    ("/sms/send", "post"), ("/sms/history", "get"), ("/balance", "get"),
    ("/balance/add", "post"), ("/healthz", "get"), ("/readyz", "get"),
}


def test_swagger_ui_and_the_openapi_document(shared_gateway: Gateway) -> None:
    with shared_gateway.client() as c:
        ui = c.get("/swagger")
        index = c.get("/swagger/index.html")
        spec = c.get("/swagger/openapi.json").json()
    assert ui.status_code == index.status_code == 200
    assert "swagger-ui" in ui.text.lower()
    listed = {(path.rstrip("/") or "/", method) for path, ops in spec["paths"].items()
              for method in ops}
    assert listed >= ROUTES
    for path, method in ROUTES:
        op = spec["paths"].get(path) or spec["paths"][path + "/"]
        assert op[method]["operationId"]
    send = spec["paths"]["/sms/send"]["post"]
    assert "requestBody" in send and "200" in send["responses"]
    schemas = spec["components"]["schemas"]
    assert {"SendSmsRequest", "SendSmsResponse", "HistoryResponse", "BalanceResponse",
            "TopUpRequest"} <= set(schemas)


def test_metrics_count_requests_by_route_and_status(shared_gateway: Gateway) -> None:
    with shared_gateway.client() as c:
        assert c.get("/balance").status_code == 400  # no user_id
        text = c.get("/metrics").text
    assert "smsgw_http_requests_total" in text
    assert "smsgw_http_request_duration_seconds_bucket" in text
    lines = [x for x in text.splitlines()
             if x.startswith("smsgw_http_requests_total") and 'path="/balance"' in x]
    assert any('status_code="400"' in line for line in lines), lines


def test_health_and_readiness(shared_gateway: Gateway) -> None:
    with shared_gateway.client() as c:
        assert c.get("/healthz").json()["status"] == "ok"
        ready = c.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_unknown_route_is_404_json(shared_gateway: Gateway) -> None:
    with shared_gateway.client() as c:
        r = c.get("/no/such/route")
        wrong_method = c.delete("/sms/send")
    assert r.status_code == 404
    assert r.json() == {"message": "no route GET /no/such/route"}
    assert wrong_method.status_code == 405
    assert "message" in wrong_method.json()
    assert "POST" in wrong_method.headers["allow"].split(", ")


def test_every_wrong_method_is_405_with_allow(shared_gateway: Gateway) -> None:
    with shared_gateway.client() as c:
        for path, method in ROUTES:
            wrong = "PUT" if method == "post" else "POST"
            r = c.request(wrong, path)
            assert r.status_code == 405, (path, r.text)
            assert method.upper() in r.headers["allow"].split(", "), (path, r.headers)


def test_the_document_is_also_at_the_go_services_path(shared_gateway: Gateway) -> None:
    with shared_gateway.client() as c:
        ours = c.get("/swagger/openapi.json")
        gos = c.get("/swagger/doc.json")
    assert gos.status_code == 200 and gos.json() == ours.json()


def test_the_swagger_ui_needs_no_other_host(shared_gateway: Gateway) -> None:
    """Every script, style and image the page loads is served by the gateway: on a
    network that reaches no CDN the page still works."""
    with shared_gateway.client() as c:
        page = c.get("/swagger/index.html").text
        sources = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert sources, page
        for source in sources:
            assert source.startswith("/"), f"{source} is loaded from another host"
            asset = c.get(source)
            assert asset.status_code == 200 and asset.content, source
    assert any(s.endswith("swagger-ui-bundle.js") for s in sources), sources


def test_a_failure_inside_a_handler_is_500_logged_and_writes_nothing(gateway: Gateway) -> None:
    gateway.top_up(77, 10)
    # Pull a table out from under the running service: the accept transaction fails
    # after writing sms_status rows, which must be rolled back.
    gateway.query("ALTER TABLE outbox_events RENAME TO outbox_events_away")
    try:
        with gateway.client() as c:
            r = c.post("/sms/send", json={"customer_id": 77, "text": "hi",
                                          "recipients": ["09121234567"]})
            ready = c.get("/readyz")
    finally:
        gateway.query("ALTER TABLE outbox_events_away RENAME TO outbox_events")
    assert r.status_code == 500
    assert r.json() == {"message": "internal error"}
    assert "Traceback" in gateway.logs() and "outbox_events" in gateway.logs()
    assert gateway.query("SELECT COUNT(*) FROM sms_status")[0][0] == 0
    assert gateway.query("SELECT balance FROM user_balances WHERE user_id = 77") == [(10,)]
    assert ready.status_code in (200, 503)
