"""Hostile HTTP: generated requests against every endpoint of the OpenAPI document, plus hand-made ones.

No 5xx, every response conforms to the document, and generation stays on cadence meanwhile.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse

from app.api import create_app
from app.api.openapi import openapi_document
from app.service.service import Service

DOCUMENT = openapi_document()
SPEC = OpenAPI.from_dict(DOCUMENT)
# State-changing and endless endpoints are exercised by the lifecycle, concurrency and SSE tests.
FUZZED_PATHS = sorted(p for p in DOCUMENT["paths"] if p not in ("/api/pause", "/api/resume", "/api/clean",
                                                                  "/api/events"))
PARAMS = ["limit", "since", "level", "stream", "x", "limit[]", ""]
nasty_text = (st.text(max_size=50) | st.sampled_from(["-1", "0", "1", "1000", "1001", "abc", "1e9", "NaN", "",
                                                     "9" * 400, "2026-11-25T20:00:00Z", "1764100800",
                                                     "warning", "events", "companies", "%00", "../../etc"])
              | st.integers(-10**30, 10**30).map(str))


@pytest.fixture(scope="module")
def live():
    import tempfile
    from pathlib import Path

    from app.core.config import Config

    tmp = tempfile.mkdtemp(prefix="fleetgen-fuzz-")
    config = Config.model_validate({"seed": 3, "output": {"data_dir": str(Path(tmp) / "data")},
                                    "emulated_mode": {"enabled": True, "company_batch_interval": "PT1S",
                                                      "driver_batch_interval": "PT1S"}})
    service = Service(config)
    service.start(catch_up_in_background=False)
    client = create_app(config, service, {"TESTING": True}).test_client()
    began = time.time()
    yield service, client, began
    service.stop(timeout=5)
    service.store.close()


def conforms(response) -> None:
    operations = DOCUMENT["paths"].get(response.request.path, {})
    if response.request.method.lower() not in operations:
        # not an operation of the document: the only right answers are JSON 404 / 405, or 403 for a
        # write a browser could forge cross-site (refused before routing)
        assert response.status_code in (403, 404, 405), response.status_code
        assert set(response.get_json()) == {"error", "detail", "timestamp"}
        return
    SPEC.validate_response(WerkzeugOpenAPIRequest(response.request), WerkzeugOpenAPIResponse(response))


@settings(max_examples=500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(path=st.sampled_from(FUZZED_PATHS), method=st.sampled_from(["GET", "GET", "GET", "POST", "PUT", "DELETE"]),
       query=st.dictionaries(st.sampled_from(PARAMS), nasty_text, max_size=4),
       body=st.binary(max_size=300), content_type=st.sampled_from(["application/json", "text/plain",
                                                                   "application/x-www-form-urlencoded",
                                                                   "multipart/form-data", "\x00bogus"]))
def test_generated_requests(live, path, method, query, body, content_type):
    _, client, _ = live
    response = client.open(path, method=method, query_string=query, data=body if method != "GET" else None,
                           headers={"Content-Type": content_type})
    assert response.status_code < 500, (path, method, query, response.data[:300])
    conforms(response)
    if response.status_code >= 400:
        assert response.is_json and set(response.get_json()) == {"error", "detail", "timestamp"}


@pytest.mark.parametrize("method, path, kwargs, status", [
    ("GET", "/api/logs", {"query_string": {"limit": "9" * 10_000}}, 400),
    ("GET", "/api/logs", {"query_string": {"since": "9" * 400}}, 400),
    ("GET", "/api/logs", {"query_string": {"since": "2026-13-45T99:99:99Z"}}, 400),
    ("GET", "/api/logs", {"query_string": {"since": "1e400"}}, 400),
    ("GET", "/api/logs", {"query_string": {"level": "INFO\x00"}}, 400),
    ("GET", "/api/batches", {"query_string": {"limit": "0"}}, 400),
    ("DELETE", "/api/health", {}, 405),
    ("PUT", "/api/logs", {}, 405),
    ("GET", "/api/pause", {}, 405),
    ("POST", "/api/pause", {"data": b"x" * (1 << 20), "headers": {"Content-Type": "application/json"}}, 413),
    # (resume, not pause: these cases must not stop the generation the last test checks)
    ("POST", "/api/resume", {"data": "<xml/>", "headers": {"Content-Type": "application/xml"}}, 403),
    ("POST", "/api/resume", {"data": "x", "headers": {"Content-Type": "text/plain"}}, 403),
    ("POST", "/api/resume", {"headers": {"Origin": "http://evil.example"}}, 403),
    ("POST", "/api/resume", {"headers": {"Sec-Fetch-Site": "cross-site"}}, 403),
    ("GET", "/api/logs", {"headers": {"Host": "evil.example"}}, 421),
    ("GET", "/api/health", {"headers": {"Host": "evil.example:8080"}}, 421),
    ("POST", "/api/resume", {"data": b"\xff\xfe", "headers": {"Content-Type": "application/json"}}, 200),
    ("GET", "/api/" + "a" * 5000, {}, 404),
    ("GET", "/static/../../etc/passwd", {}, 404),
    ("GET", "/static/..%2f..%2fapp%2fconfig.py", {}, 404),
])
def test_hand_written_hostile_requests(live, method, path, kwargs, status):
    _, client, _ = live
    response = client.open(path, method=method, **kwargs)
    assert response.status_code == status, response.data[:300]
    conforms(response)
    if status >= 400:
        assert response.is_json and set(response.get_json()) == {"error", "detail", "timestamp"}


def test_generation_stayed_on_cadence_throughout(live):
    service, _, began = live
    service.scheduler.shutdown(wait=True)  # settle: the job in flight finishes (not abandoned), none starts
    elapsed = time.time() - began
    for stream in ("companies", "events"):
        rows = service.store.all_batches(stream)
        assert all(a.window.end == b.window.start for a, b in zip(rows, rows[1:], strict=False))
        settled = rows[:-1] if rows and rows[-1].status == "pending" else rows  # the last may be in flight
        assert all(r.status == "committed" for r in settled), [(r.batch_id, r.status, r.error) for r in rows
                                                                if r.status != "committed"]
        assert len(rows) >= int(elapsed) - 1  # about one window per second since the start
