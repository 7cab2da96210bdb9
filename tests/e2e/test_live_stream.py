"""The real waitress server streams Server-Sent Events without buffering them."""

import http.client
import json
import time

import pytest

from app.core.timeline import parse_timestamp

pytestmark = pytest.mark.slow


def test_sse_through_waitress_delivers_batches_within_2_s(service_process):
    process = service_process({}).start()
    process.wait_http()
    conn = http.client.HTTPConnection("127.0.0.1", process.port, timeout=10)
    conn.request("GET", "/api/events")
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Content-Type").startswith("text/event-stream")
    delays = []
    block: dict[str, str] = {}
    deadline = time.monotonic() + 15
    while len(delays) < 4 and time.monotonic() < deadline:
        line = response.fp.readline().decode().rstrip("\n")
        if line == "":
            if block.get("event") == "batch":
                delays.append(time.time() - parse_timestamp(json.loads(block["data"])["finished_at"]).timestamp())
            block = {}
        elif not line.startswith(":") and ": " in line:
            key, value = line.split(": ", 1)
            block[key] = value
    conn.close()
    assert len(delays) == 4, "fewer than 4 batch events in 15 s"
    assert max(delays) < 2.0, delays
    assert process.terminate() == 0


def test_paused_state_survives_a_restart(service_process):
    process = service_process({}).start()
    process.wait_http()
    request = http.client.HTTPConnection("127.0.0.1", process.port, timeout=5)
    request.request("POST", "/api/pause")
    assert json.loads(request.getresponse().read())["status"] == "paused"
    assert process.terminate() == 0
    process.start()
    process.wait_http()
    conn = http.client.HTTPConnection("127.0.0.1", process.port, timeout=5)
    conn.request("GET", "/api/health")
    health = json.loads(conn.getresponse().read())
    assert health["status"] == "paused" and health["lifecycle"]["paused"] is True
    assert process.terminate() == 0
