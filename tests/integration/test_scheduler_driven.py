"""The real APScheduler driven by a frozen clock: jobs run inline, we wait on EXECUTED events."""

import hashlib
import json
import queue
from datetime import timedelta

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from apscheduler.executors.debug import DebugExecutor
from freezegun import freeze_time

from app.service.scheduler import COMPANY_JOB_ID, DRIVER_JOB_ID, PREPARE_JOB_IDS
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


def wait_jobs(events: queue.Queue, count: int, ids=(COMPANY_JOB_ID, DRIVER_JOB_ID)) -> list:
    """The next ``count`` runs of the jobs ``ids`` (boundary jobs by default); every run seen on the
    way, the prepare-ahead jobs included, must have succeeded."""
    seen, matched = [], []
    while len(matched) < count:
        event = events.get(timeout=5)
        seen.append(event)
        if event.job_id in ids:
            matched.append(event)
    assert all(e.code == EVENT_JOB_EXECUTED for e in seen), [getattr(e, "exception", None) for e in seen]
    return matched


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


def _staged(service) -> list[str]:
    staging = service.pipeline.layout.staging
    return sorted(p.name for p in staging.iterdir()) if staging.is_dir() else []


def _prepared_before_the_boundary(service, executed, frozen) -> None:
    """Start at 20:00:05 and let the prepare-ahead jobs run 2.5 s (a quarter of PT10S) before 20:00:10."""
    service.start(catch_up_in_background=False)
    frozen.move_to("2026-11-25T20:00:07.600Z")
    service.scheduler.wakeup()
    wait_jobs(executed, 2, ids=tuple(PREPARE_JOB_IDS.values()))
    assert len(_staged(service)) == 2


def _record_digests(data_dir) -> dict[str, str]:
    return {str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for pattern in ("raw/*/*/*.jsonl", "raw/*/*/_issues.ndjson") for p in data_dir.glob(pattern)}


def test_batches_prepared_ahead_become_visible_at_their_boundary_with_the_same_bytes(make_config, tmp_path):
    quality = {"enabled": True, "error_rate": 0.3}
    config = make_config(emulated_mode=EMULATED_10S, quality_injection=quality)
    reference = make_config(emulated_mode=EMULATED_10S, quality_injection=quality,
                            output={"data_dir": str(tmp_path / "reference")})
    with freeze_time("2026-11-25T20:00:05Z") as frozen:
        made_at_boundary = Service(reference)  # no scheduler: every batch made when its window is closed
        made_at_boundary.startup_catch_up()
        service, executed = driven(config)
        try:
            _prepared_before_the_boundary(service, executed, frozen)
            data = config.output.local_dir
            assert not (data / "raw/events/20261125T200000Z").exists()  # nothing visible before the close
            assert len(service.store.all_batches("events")) == 1

            frozen.move_to("2026-11-25T20:00:10.002Z")
            service.scheduler.wakeup()
            wait_jobs(executed, 2)
            assert _staged(service) == []
            for stream in ("events", "companies"):
                row = service.store.all_batches(stream)[-1]
                assert row.status == "committed" and row.window.end == utc(2026, 11, 25, 20, 0, 10)
                assert abs(row.lateness_ms - 2.0) < 1e-6 and not row.catch_up
                meta = json.loads((data / f"raw/{stream}/20261125T200000Z/_batch_meta.json").read_text())
                assert meta["generated_at"] == "2026-11-25T20:00:07.600Z"  # true: made before the close
                assert meta["published_at"] == "2026-11-25T20:00:10.002Z"
            made_at_boundary.wake("events")
            made_at_boundary.wake("companies")
            assert _record_digests(data) == _record_digests(tmp_path / "reference")
            assert len(_record_digests(data)) == 10  # 3 + 2 company and event record files, 5 quality logs
        finally:
            service.stop()
            made_at_boundary.store.close()


def test_pause_drops_a_prepared_batch_and_the_boundary_skips_its_window(make_config):
    with freeze_time("2026-11-25T20:00:05Z") as frozen:
        service, executed = driven(make_config(emulated_mode=EMULATED_10S))
        try:
            _prepared_before_the_boundary(service, executed, frozen)
            service.pause()
            assert _staged(service) == []
            frozen.move_to("2026-11-25T20:00:10.002Z")
            service.scheduler.wakeup()
            wait_jobs(executed, 2)
            assert [r.status for r in service.store.all_batches("events")] == ["committed", "skipped"]
            assert not (service.pipeline.layout.root / "raw/events/20261125T200000Z").exists()
        finally:
            service.stop()


def test_a_prepare_job_that_runs_after_its_boundary_prepares_nothing(make_config):
    with freeze_time("2026-11-25T20:00:05Z") as frozen:
        service, _ = driven(make_config(emulated_mode=EMULATED_10S))
        try:
            service.start(catch_up_in_background=False)
            frozen.move_to("2026-11-25T20:00:10.500Z")  # the job ran late: its boundary is behind it
            assert service.prepare_next("events") is False and _staged(service) == []
        finally:
            service.stop()
