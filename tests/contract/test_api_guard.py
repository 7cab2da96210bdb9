"""No web page can drive the service: Host allow-list, no cross-site writes, CORS only for listed origins,
and a token that can guard the reads too (issue #11, part 2)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.api.guard import host_name
from app.api.openapi import openapi_document
from app.core.config import ApiConfig

TOKEN = "a-long-enough-token"
SPA = "http://localhost:5173"


@pytest.fixture
def guarded(served):
    def build(**api):
        return served(emulated_mode={"enabled": True, "company_batch_interval": "PT1S",
                                     "driver_batch_interval": "PT1S"}, api=api)

    return build


def every_operation():
    for path, operations in openapi_document()["paths"].items():
        for method in operations:
            yield method.upper(), path


@pytest.mark.parametrize("method, path", list(every_operation()))
def test_a_foreign_host_is_refused_on_every_endpoint(guarded, method, path):
    service, client = guarded()
    response = client.open(path, method=method, headers={"Host": "rebound.evil.example:8080"})
    assert response.status_code == 421 and response.is_json
    assert set(response.get_json()) == {"error", "detail", "timestamp"}
    assert "rebound.evil.example" in response.get_json()["detail"]
    assert not service.lifecycle.paused


def test_listed_hosts_and_loopback_names_are_answered(guarded):
    _, client = guarded(allowed_hosts=["fleetgen.internal"])
    for host in ("localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:8080", "fleetgen.internal:9000",
                 "FLEETGEN.internal"):
        assert client.get("/api/health", headers={"Host": host}).status_code == 200, host


@pytest.mark.parametrize("headers, data", [
    ({"Origin": "http://evil.example"}, None),  # fetch() from another site
    ({"Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"}, "a=1"),  # a form
    ({"Origin": "null", "Content-Type": "text/plain"}, "x"),  # a sandboxed frame
    ({"Content-Type": "text/plain"}, "x"),  # no Origin, but a body a page can send without preflight
    ({"Content-Type": "multipart/form-data; boundary=x"}, "--x--"),
    ({"Sec-Fetch-Site": "cross-site"}, None),
])
def test_cross_site_writes_change_nothing(guarded, headers, data):
    service, client = guarded()
    before = len(list(service.pipeline.layout.stream_dir("events").iterdir()))
    for path in ("/api/pause", "/api/clean"):
        response = client.post(path, headers=headers, data=data)
        assert response.status_code == 403 and response.is_json, path
        assert "Access-Control-Allow-Origin" not in response.headers
    assert not service.lifecycle.paused
    assert len(list(service.pipeline.layout.stream_dir("events").iterdir())) >= before >= 1


def test_same_origin_and_scripts_without_a_browser_still_work(guarded):
    service, client = guarded()
    assert client.post("/api/pause", headers={"Origin": "http://localhost"}).status_code == 200  # the dashboard
    assert client.post("/api/resume", json={}).status_code == 200  # a script posting JSON
    assert client.post("/api/pause").status_code == 200  # curl -X POST
    assert service.lifecycle.paused


def test_cors_answers_only_listed_origins_preflight_included(guarded):
    service, client = guarded(cors_origins=[SPA])
    preflight = client.options("/api/pause", headers={"Origin": SPA, "Access-Control-Request-Method": "POST",
                                                      "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == SPA
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]
    health = client.get("/api/health", headers={"Origin": SPA})
    assert health.headers["Access-Control-Allow-Origin"] == SPA and health.headers["Vary"] == "Origin"
    paused = client.post("/api/pause", headers={"Origin": SPA, "Content-Type": "application/json"}, data="{}")
    assert paused.status_code == 200 and paused.headers["Access-Control-Allow-Origin"] == SPA
    other = "http://localhost:3000"
    refused = client.options("/api/pause", headers={"Origin": other, "Access-Control-Request-Method": "POST"})
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers
    assert "Access-Control-Allow-Origin" not in client.get("/api/health", headers={"Origin": other}).headers


def test_protect_reads_extends_the_token_to_logs_batches_events_and_metrics(guarded):
    _, client = guarded(token=TOKEN, protect_reads=True)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/api/logs", "/api/batches", "/api/chart", "/api/dataset", "/metrics"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers=bearer).status_code == 200, path
    assert client.get("/api/health").status_code == 200  # the state stays readable
    assert client.get("/api/events").status_code == 401
    stream = client.get(f"/api/events?access_token={TOKEN}", buffered=False)
    assert stream.status_code == 200 and stream.mimetype == "text/event-stream"
    stream.close()
    assert client.get("/api/logs?access_token=" + TOKEN).status_code == 401  # the query form is for SSE only


def test_without_protect_reads_the_token_guards_only_writes(guarded):
    _, client = guarded(token=TOKEN)
    assert client.get("/api/logs").status_code == 200
    assert client.post("/api/pause").status_code == 401


@pytest.mark.parametrize("api, fragment", [
    ({"host": "0.0.0.0"}, "reachable from other machines"),
    ({"host": "192.168.1.20"}, "api.allow_unauthenticated"),
    ({"protect_reads": True}, "protect_reads needs api.token"),
    ({"cors_origins": ["http://localhost:5173/"]}, "is not an origin"),
    ({"cors_origins": ["localhost:5173"]}, "is not an origin"),
    ({"allowed_hosts": ["http://fleetgen.internal"]}, "is not a host name"),
    ({"token": "short"}, "at least 8"),
])
def test_risky_api_settings_are_refused_naming_the_rule(api, fragment):
    with pytest.raises(ValidationError, match=fragment):
        ApiConfig.model_validate(api)


def test_exposure_on_purpose_is_accepted():
    assert ApiConfig.model_validate({"host": "0.0.0.0", "token": TOKEN}).host == "0.0.0.0"
    assert ApiConfig.model_validate({"host": "0.0.0.0", "allow_unauthenticated": True}).token is None


@pytest.mark.parametrize("header, name", [("LocalHost:8080", "localhost"), ("[::1]:80", "::1"), ("[::1]", "::1"),
                                          ("127.0.0.1", "127.0.0.1"), ("evil.example:1:2", "evil.example:1:2")])
def test_host_names_are_read_without_their_port(header, name):
    assert host_name(header) == name
