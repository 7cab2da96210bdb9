"""The service on real time at 1 s intervals: cadence, pause, clean, resume, first batch latency."""

import queue
import time

import pytest

from app.api.health import health_document
from app.core import bronze
from app.core.errors import LifecycleError
from app.service.service import Service
from tests.conftest import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def fast_service(make_config):
    services = []

    def start(**overrides):
        config = make_config(emulated_mode={"enabled": True, "company_batch_interval": "PT1S",
                                            "driver_batch_interval": "PT1S", "companies_per_batch": 3,
                                            "events_per_batch_min": 5, "events_per_batch_max": 20},
                             quality_injection={"enabled": True, "error_rate": 0.2}, **overrides)
        service = Service(config)
        events = service.broadcaster.subscribe()
        service.start()
        services.append(service)
        return service, events

    yield start
    for service in services:
        service.stop(timeout=5)
        service.store.close()


def next_event(events: queue.Queue, kind: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = events.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if message["event"] == kind:
            return message["data"]
    raise AssertionError(f"no {kind!r} event within {timeout} s")


def test_first_company_batch_within_2_s_then_consecutive_boundaries(fast_service):
    started = time.monotonic()
    service, events = fast_service()
    first = next_event(events, "batch", 2.0)
    assert time.monotonic() - started < 2.0
    assert first["stream"] == "companies"
    for _ in range(10):
        next_event(events, "batch", 3.0)
    service.scheduler.shutdown(wait=True)  # the job in flight finishes (not abandoned), none starts
    for stream in ("companies", "events"):
        rows = service.store.all_batches(stream)
        assert len(rows) >= 3
        assert all(r.status == "committed" for r in rows)
        assert all(a.window.end == b.window.start for a, b in zip(rows, rows[1:], strict=False))  # no gap
        assert len({r.window.start for r in rows}) == len(rows)  # no duplicate
        if stream == "events":
            assert all(5 <= r.record_count <= 20 for r in rows)
        scheduled = [r for r in rows if r.firing_delay_s is not None]
        assert scheduled and all(r.firing_delay_s < 1.0 for r in scheduled)
        for row in rows:
            assert bronze.verify_batch(service.pipeline.layout.batch_dir(stream, row.batch_id)) == []


def test_pause_clean_resume(fast_service):
    service, events = fast_service()
    next_event(events, "batch", 3.0)
    with pytest.raises(LifecycleError, match="paused"):
        service.clean()  # refused while running
    service.pause()
    assert service.pipeline.wait_idle(5)  # a batch in flight when pausing may still land; now none is
    committed_before = {s: len([r for r in service.store.all_batches(s) if r.status == "committed"])
                        for s in ("companies", "events")}

    def skipped_windows() -> bool:
        return all(len([r for r in service.store.all_batches(s) if r.status == "skipped"]) >= 3
                   for s in ("companies", "events"))

    wait_until(skipped_windows, timeout=10, what="three paused windows in each stream")
    for stream in ("companies", "events"):
        rows = service.store.all_batches(stream)
        assert len([r for r in rows if r.status == "committed"]) == committed_before[stream]
        skipped = [r for r in rows if r.status == "skipped"]
        assert len(skipped) >= 3 and {r.reason for r in skipped} == {"paused"}

    data = service.config.output.local_dir
    (data / "raw" / "notes.txt").write_text("mine, not fleetgen's")
    first = service.clean()
    assert first["removed_batches"] >= 2
    assert list(data.glob("raw/*/2*")) == [] and (data / "raw/notes.txt").exists()
    assert (data / "raw/events").is_dir() and (data / "raw/companies").is_dir()
    assert service.store.roster_size() == 0 and service.store.all_batches("events") == []
    second = service.clean()
    assert second["removed_batches"] == 0  # idempotent

    resumed_at = time.monotonic()
    assert service.resume()["auto_reinit"] is True
    next_event(events, "auto_reinit", 2.0)
    assert time.monotonic() - resumed_at < 2.0
    assert service.store.roster_size() > 0
    assert health_document(service.snapshot())["auto_reinit"]["count"] == 1
