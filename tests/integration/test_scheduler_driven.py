"""The real APScheduler driven by a frozen clock: jobs run inline, we wait on EXECUTED events."""

import queue
from datetime import timedelta

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from apscheduler.executors.debug import DebugExecutor
from freezegun import freeze_time

from app.service.scheduler import COMPANY_JOB_ID, DRIVER_JOB_ID
from app.service.service import Service
from tests.conftest import utc


def committed(service, stream):
    return [(r.window.start, r.window.end) for r in service.store.all_batches(stream) if r.status == "committed"]


def driven(config) -> tuple[Service, queue.Queue]:
    """A service whose jobs run inline in the scheduler thread, reporting each run on a queue."""
    service = Service(config, executor=DebugExecutor())
    executed: queue.Queue = queue.Queue()
    service.scheduler.add_listener(executed.put, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    return service, executed


EMULATED_10S = {"enabled": True, "company_batch_interval": "PT10S", "driver_batch_interval": "PT10S"}


def wait_jobs(events: queue.Queue, count: int) -> list:
    seen = [events.get(timeout=5) for _ in range(count)]
    assert all(e.code == EVENT_JOB_EXECUTED for e in seen), [getattr(e, "exception", None) for e in seen]
    return seen


def test_driven_scheduler_produces_each_window_once_on_its_boundary(make_config):
    with freeze_time("2026-11-25T20:00:05Z") as frozen:
        service, executed = driven(make_config(emulated_mode=EMULATED_10S))
        try:
            service.start(catch_up_in_background=False)
            # baseline company window closes where the first driver window starts
            assert committed(service, "events") == [(utc(2026, 11, 25, 19, 59, 50), utc(2026, 11, 25, 20))]
            assert committed(service, "companies") == [
                (utc(2026, 11, 25, 19, 59, 40), utc(2026, 11, 25, 19, 59, 50)),
                (utc(2026, 11, 25, 19, 59, 50), utc(2026, 11, 25, 20))]
            assert service.next_run_time("events") == utc(2026, 11, 25, 20, 0, 10)

            frozen.move_to("2026-11-25T20:00:10.002Z")
            service.scheduler.wakeup()
            jobs = wait_jobs(executed, 2)
            assert {j.job_id for j in jobs} == {COMPANY_JOB_ID, DRIVER_JOB_ID}
            assert {j.scheduled_run_time for j in jobs} == {utc(2026, 11, 25, 20, 0, 10)}
            row = service.store.find("events", service.store.all_batches("events")[-1].window)
            assert row.window.end == utc(2026, 11, 25, 20, 0, 10)
            assert abs(row.firing_delay_s - 0.002) < 1e-6

            frozen.move_to("2026-11-25T20:00:45Z")  # three boundaries at once: APScheduler coalesces
            service.scheduler.wakeup()
            wait_jobs(executed, 2)
            for stream in ("companies", "events"):
                windows = committed(service, stream)
                assert windows[-1][1] == utc(2026, 11, 25, 20, 0, 40)
                assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))  # no gap
                assert len(set(windows)) == len(windows)  # no duplicate
        finally:
            service.stop()


def test_driven_pause_skips_windows_and_resume_continues(make_config):
    with freeze_time("2026-11-25T20:00:05Z") as frozen:
        service, executed = driven(make_config(emulated_mode=EMULATED_10S))
        try:
            service.start(catch_up_in_background=False)
            service.pause()
            for _ in range(3):
                frozen.tick(timedelta(seconds=10))
                service.scheduler.wakeup()
                wait_jobs(executed, 2)
            rows = service.store.all_batches("events")
            assert [r.status for r in rows] == ["committed", "skipped", "skipped", "skipped"]
            assert {r.reason for r in rows[1:]} == {"paused"}
            service.resume()
            frozen.tick(timedelta(seconds=10))
            service.scheduler.wakeup()
            wait_jobs(executed, 2)
            rows = service.store.all_batches("events")
            assert rows[-1].status == "committed" and rows[-1].window.end == utc(2026, 11, 25, 20, 0, 40)
            assert all(a.window.end == b.window.start for a, b in zip(rows, rows[1:], strict=False))
        finally:
            service.stop()
