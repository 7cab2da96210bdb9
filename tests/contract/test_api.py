"""API contract: shapes, status codes, JSON errors, token, and conformance to the OpenAPI document."""

import json
import threading
import time

import pytest
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_spec_validator import validate

from app.api.openapi import openapi_document
from app.core.timeline import parse_timestamp

SPEC = OpenAPI.from_dict(openapi_document())


def conforms(response) -> None:
    SPEC.validate_response(WerkzeugOpenAPIRequest(response.request), WerkzeugOpenAPIResponse(response))


@pytest.fixture
def api(served):
    def build(mode: str = "emulated", token: str | None = None):
        return served(emulated_mode={"enabled": mode == "emulated", "company_batch_interval": "PT1S",
                                     "driver_batch_interval": "PT1S", "companies_per_batch": 4,
                                     "events_per_batch_min": 6, "events_per_batch_max": 9}, api={"token": token})

    return build


def test_openapi_document_is_valid():
    validate(openapi_document())


def test_health_in_emulated_mode(api):
    service, client = api("emulated")
    response = client.get("/api/health")
    assert response.status_code == 200
    conforms(response)
    body = response.get_json()
    assert body["generation_mode"] == "emulated" and body["status"] == "running"
    assert body["emulated_config"] == {"company_interval_seconds": 1, "driver_interval_seconds": 1,
                                       "companies_per_batch": 4, "events_per_batch_range": [6, 9]}
    assert body["company_generator"]["total_batches"] >= 1
    assert body["driver_generator"]["last_interval_end"].endswith("Z")
    assert set(body["uptime"]) == {"seconds", "hours", "start_time"}
    assert body["lifecycle"] == {"paused": False, "shutdown_requested": False}


def test_health_in_production_mode_has_no_emulated_config(api):
    _, client = api("production")
    response = client.get("/api/health")
    conforms(response)
    body = response.get_json()
    assert body["generation_mode"] == "production" and "emulated_config" not in body
    assert body["company_generator"]["interval_seconds"] == 3600
    assert body["driver_generator"]["interval_seconds"] == 900


def test_pause_resume_clean_semantics(api):
    service, client = api()
    conflict = client.post("/api/clean")
    assert conflict.status_code == 409
    conforms(conflict)
    assert "paused" in conflict.get_json()["detail"]
    first, repeat = client.post("/api/pause"), client.post("/api/pause")
    for response in (first, repeat):  # idempotent: a repeat is a success that says so
        assert response.status_code == 200
        conforms(response)
    assert first.get_json()["success"] is True and first.get_json()["changed"] is True
    assert repeat.get_json()["message"] == "already paused" and repeat.get_json()["success"] is True
    assert {k: repeat.get_json()[k] for k in ("action", "status", "error", "extra")} == {
        "action": "pause", "status": "paused", "error": None, "extra": None}
    assert client.get("/api/health").get_json()["status"] == "paused"
    cleaned = client.post("/api/clean")
    assert cleaned.status_code == 200
    conforms(cleaned)
    body = cleaned.get_json()
    assert body["success"] is True and body["action"] == "clean" and body["status"] == "paused"
    assert body["deleted_count"] == len(body["deleted_items"]) >= body["removed_batches"] >= 1
    batch = next(item for item in body["deleted_items"] if item["type"] == "batch")
    assert batch["path"].startswith("raw/") and batch["size"] > 0 and batch["file_count"] >= 2
    assert body["filesRemoved"] == sum(item["file_count"] for item in body["deleted_items"])
    assert body["errors"] == [] and body["durationMs"] >= 0
    again = client.post("/api/clean").get_json()
    assert again["deleted_count"] == 0 and again["removed_batches"] == 0 and again["message"] == "nothing to remove"
    resumed = client.post("/api/resume")
    conforms(resumed)
    body = resumed.get_json()
    assert body["success"] is True and body["status"] == "running" and body["changed"] is True
    assert body["auto_reinit"] is True and body["extra"]["auto_reinit"] is True
    repeat = client.post("/api/resume").get_json()
    assert repeat["changed"] is False and repeat["message"] == "already running"
    assert client.get("/api/health").get_json()["status"] == "running"


def test_health_carries_the_seed_blueprint_keys_and_iso_timestamps(api, caplog):
    caplog.set_level("INFO", logger="app")
    service, client = api()
    service.pause()
    service.clean()
    service.resume()
    service.lifecycle._reinit_thread.join(10)
    response = client.get("/api/health")
    conforms(response)
    body = response.get_json()
    assert body["uptime_seconds"] >= 0 and body["start_time"].endswith("Z")
    assert body["company_batches"] >= 1 and body["driver_batches"] >= 1
    assert body["paused"] is False and body["shutdown_requested"] is False
    assert body["last_company_time"].endswith("Z") and body["last_driver_time"].endswith("Z")
    reinit = body["auto_reinit"]
    assert reinit["performed"] is True and body["auto_reinitialized"] is True and reinit["at"].endswith("Z")
    assert any("baseline company batch" in action for action in reinit["actions"])
    assert "raw/companies/" in reinit["missing_files"]
    assert body["reinit_driver_batch_id"] == reinit["reinit_driver_batch_id"] is not None
    assert body["reinit_company_time"].endswith("Z") and body["reinit_driver_time"].endswith("Z")
    assert body["state"]["state_file"].startswith("sqlite:///") and body["state"]["last_saved"].endswith("Z")
    assert body["catch_up"]["finished_at"].endswith("Z")
    done = [r for r in caplog.records if r.getMessage() == "auto re-initialisation done"]
    assert len(done) == 1
    assert done[0].fields["company_total"] >= 1 and done[0].fields["first_driver_batch_events"] >= 1


def test_the_state_file_never_shows_a_password():
    from app.store import Store

    store = Store.__new__(Store)
    store.url = "postgresql://fleet:hunter2@db.internal:5432/fleetgen"
    assert "hunter2" not in store.location and "***" in store.location


def test_logs_and_filters(api):
    service, client = api()
    service.pause()
    service.resume()
    import logging

    from app.service.logs import StoreHandler

    handler = StoreHandler(service.store)
    logging.getLogger("app.test").addHandler(handler)
    logging.getLogger("app.test").setLevel(logging.INFO)
    logging.getLogger("app.test").warning("disk nearly full", extra={"fields": {"free_mb": 12}})
    logging.getLogger("app.test").info("all good")
    handler.close()
    logging.getLogger("app.test").removeHandler(handler)

    response = client.get("/api/logs?limit=50")
    conforms(response)
    body = response.get_json()
    messages = [entry["message"] for entry in body["entries"]]
    assert "disk nearly full" in messages and "all good" in messages
    assert body["totalReturned"] == len(body["entries"]) == body["count"]
    entry = body["entries"][messages.index("disk nearly full")]
    assert entry["level"] == "warning" and entry["source"] == "app.test" and entry["context"] == {"free_mb": 12}
    assert entry["ts"].endswith("Z")
    warnings = client.get("/api/logs?level=warning").get_json()
    assert [e["message"] for e in warnings["entries"]] == ["disk nearly full"]  # warning and above
    assert warnings["logs"][0]["fields"] == {"free_mb": 12}  # fleetgen's own shape stays beside
    assert client.get("/api/logs?limit=1").get_json()["totalReturned"] == 1
    newer = client.get(f"/api/logs?since={body['nextSince']}").get_json()
    assert newer["entries"] == [] and newer["nextSince"] is None  # nextSince returns only newer entries
    assert client.get("/api/logs?since=2999-01-01T00:00:00Z").get_json()["count"] == 0
    assert len(client.get("/api/logs").get_json()["entries"]) <= 200  # the default limit


@pytest.mark.parametrize("query, fragment", [
    ("limit=-1", "limit: -1 is outside 1..500"),
    ("limit=501", "limit: 501 is outside 1..500"),
    ("limit=abc", "limit: 'abc' is not an integer"),
    ("limit=100000", "outside"),
    ("level=bogus", "level: 'bogus' is not one of"),
    ("since=notadate", "since: 'notadate'"),
])
def test_bad_log_parameters_are_400_with_a_message(api, query, fragment):
    _, client = api()
    response = client.get(f"/api/logs?{query}")
    assert response.status_code == 400
    conforms(response)
    body = response.get_json()
    assert body["error"] == "bad_request" and fragment in body["detail"] and body["timestamp"].endswith("Z")


def test_json_404_and_405(api):
    _, client = api()
    missing = client.get("/api/nope")
    assert missing.status_code == 404 and missing.is_json
    assert set(missing.get_json()) == {"error", "detail", "timestamp"}
    wrong = client.get("/api/pause")
    assert wrong.status_code == 405 and wrong.is_json and "POST" in wrong.headers["Allow"]
    assert b"<html" not in wrong.data.lower() and b"Traceback" not in wrong.data


def test_token_protects_state_changing_endpoints(api):
    _, client = api(token="s3cret-token")
    assert client.get("/api/health").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}):
        response = client.post("/api/pause", headers=headers)
        assert response.status_code == 401
        conforms(response)
    assert client.post("/api/pause", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    assert client.post("/api/resume", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


def test_batches_chart_metrics_openapi(api):
    _, client = api()
    for path in ("/api/batches", "/api/batches?stream=events&limit=3", "/api/chart", "/api/openapi.json",
                 "/metrics", "/"):
        response = client.get(path)
        assert response.status_code == 200, path
        conforms(response)
    assert client.get("/api/batches?stream=trucks").status_code == 400
    metrics = client.get("/metrics").data.decode()
    assert 'fleetgen_batches_total{status="committed",stream="companies"}' in metrics
    assert "fleetgen_paused 0.0" in metrics
    assert "fleetgen_firing_delay_seconds_bucket" in metrics


def test_sse_delivers_a_batch_event_within_2_s_of_its_commit(api):
    service, client = api()
    response = client.get("/api/events", buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    received: list[dict] = []
    done = threading.Event()

    def read():
        buffer = b""
        for chunk in response.response:
            buffer += chunk
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                lines = dict(line.split(": ", 1) for line in block.decode().splitlines() if ": " in line
                             and not line.startswith(":"))
                if lines.get("event") == "batch":
                    received.append({"at": time.time(), **json.loads(lines["data"])})
                    done.set()
                    return

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(4.0), "no batch event"
    event = received[0]
    assert event["at"] - parse_timestamp(event["finished_at"]).timestamp() < 2.0
    service.shutdown_requested.set()
    response.close()


def test_health_fast_path_answers_like_the_flask_route_and_defers_everything_else(api, monkeypatch):
    service, client = api()
    fast = client.get("/api/health")
    conforms(fast)
    assert fast.headers["Content-Length"] == str(len(fast.data))
    # The same view through Flask's own routing (the path the fast path stands in for).
    with client.application.test_request_context("/api/health"):
        routed = client.application.view_functions["api.health"]()
    fast_body, routed_body = fast.get_json(), routed.get_json()
    assert set(fast_body) == set(routed_body)
    assert fast_body["company_generator"].keys() == routed_body["company_generator"].keys()
    # Anything but a plain GET goes to Flask and keeps the JSON error contract.
    posted = client.post("/api/health")
    assert posted.status_code == 405 and set(posted.get_json()) == {"error", "detail", "timestamp"}
    assert client.head("/api/health").status_code == 200
    oversized = client.get("/api/health", data=b"x" * 70_000)
    assert oversized.status_code == 413 and oversized.is_json
    # A failing health document becomes Flask's JSON 500, not a traceback or a dropped connection.
    monkeypatch.setattr(service, "snapshot", lambda: 1 / 0)
    failed = client.get("/api/health")
    assert failed.status_code == 500 and failed.get_json()["error"] == "internal_error"


@pytest.mark.parametrize("layout", ["batch", "hive"])
def test_dataset_gives_the_data_directory_and_read_snippets_that_run(served, layout):
    service, client = served(emulated_mode={"enabled": True, "company_batch_interval": "PT1S",
                                            "driver_batch_interval": "PT1S"}, output={"layout": layout})
    response = client.get("/api/dataset")
    assert response.status_code == 200
    conforms(response)
    body = response.get_json()
    data_dir = service.config.output.local_dir.resolve()
    assert body["data_dir"] == str(data_dir) and body["layout"] == layout
    assert body["schemas_dir"] == f"{data_dir}/manifests/schemas"
    service.pause()  # bronze holds still while it is counted and read
    assert service.pipeline.wait_idle(5)
    committed = {stream: sum(r.record_count for r in service.store.all_batches(stream) if r.status == "committed")
                 for stream in ("companies", "events")}
    for engine, count in (("duckdb", lambda rel: rel.count("*").fetchall()[0][0]), ("polars", len)):
        scope: dict = {}
        exec(body["snippets"][engine], scope)  # noqa: S102 - run as a user pastes them
        got = {stream: count(scope[stream]) for stream in ("companies", "events")}
        assert got == committed and committed["companies"] > 0, (engine, got)
        if layout == "hive" and engine == "duckdb":
            assert {"date", "hour", "batch_id"} <= set(scope["events"].columns)
    assert "manifests/schemas/events.spark.json" in body["snippets"]["spark"]


def test_pipeline_status_before_and_after_a_pipeline_ran(served, tmp_path):
    import threading

    from app.medallion import runner

    service, client = served(emulated_mode={"enabled": True, "company_batch_interval": "PT1S",
                                            "driver_batch_interval": "PT1S"})
    response = client.get("/api/pipeline")
    conforms(response)
    assert response.get_json()["running"] is False and response.get_json()["status"] is None
    assert "fleetgen pipeline" in response.get_json()["note"]
    assert service.pipeline.wait_idle(5)
    sink = runner.Sink(service.config, runner.Options(check_every_s=None)).open()
    try:
        runner.run_duckdb(sink, once=True, stop=threading.Event())
        running = client.get("/api/pipeline")
        conforms(running)
        body = running.get_json()
        assert body["running"] is True  # this very process holds it
        assert body["status"]["layers"]["bronze"]["companies"]["batches"] >= 1
    finally:
        sink.close()
    stopped = client.get("/api/pipeline").get_json()
    assert stopped["status"]["stopped_at"] is not None and stopped["running"] is False
