"""Long downtime, interrupted catch-up, and a wall clock that jumps."""

import logging
import queue
import time
from datetime import timedelta

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from apscheduler.executors.debug import DebugExecutor
from freezegun import freeze_time

from app.api.health import health_document
from app.service.scheduler import JOB_STREAMS
from app.service.service import Service
from tests.conftest import utc
from tests.integration.test_faults import Clock, assert_ledger_matches_disk

DAY = timedelta(days=1)


def production(make_config, bound: int):
    return make_config(number_of_companies=3, drivers_per_company=2, event_rate_per_driver=1.0,
                       scheduling={"max_catch_up_windows": bound})


def test_thirty_days_down_catch_up_is_bounded_logged_and_leaves_the_api_responsive(make_config, caplog):
    caplog.set_level(logging.INFO, logger="app")
    config = production(make_config, bound=300)
    start = utc(2026, 10, 26, 12, 0, 30)
    first = Service(config, clock=Clock(start))
    first.startup_catch_up()
    first.store.close()

    clock = Clock(start + 30 * DAY)
    service = Service(config, clock=clock, monotonic=clock.monotonic)
    service.start()  # catch-up runs in the background
    answered = []
    while service._startup_thread.is_alive():
        began = time.perf_counter()
        health = health_document(service.snapshot())
        answered.append((time.perf_counter() - began, health["catch_up"]["running"]))
        time.sleep(0.02)
    service._startup_thread.join()
    assert any(running for _, running in answered)  # health answered during the catch-up
    assert max(seconds for seconds, _ in answered) < 0.5

    rows = service.store.all_batches("events")
    assert [r.status for r in rows[:2]] == ["committed", "skipped"] and rows[1].reason == "catch_up_limit"
    assert [r.status for r in rows[2:]] == ["committed"] * 300
    assert rows[-1].window.end == utc(2026, 11, 25, 12)  # up to the last closed 15-minute window
    covered = sum((r.window.length for r in rows), timedelta())
    assert rows[0].window.start + covered == rows[-1].window.end  # nothing lost silently
    messages = [r.getMessage() for r in caplog.records]
    assert "catching up" in messages and "catch-up progress" in messages and "windows skipped" in messages
    service.stop()
    assert_ledger_matches_disk(service)
    service.store.close()


def test_interrupted_catch_up_resumes_without_duplicates(make_config):
    config = production(make_config, bound=400)
    start = utc(2026, 11, 1, 0, 0, 30)
    Service(config, clock=Clock(start)).startup_catch_up()
    late = Clock(start + 3 * DAY)
    service = Service(config, clock=late, monotonic=late.monotonic)
    service.start()
    deadline = time.monotonic() + 20
    while len(service.store.all_batches("events")) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    service.stop(timeout=5)  # interrupted midway
    service._startup_thread.join(timeout=10)
    produced = len(service.store.all_batches("events"))
    assert 40 <= produced < 3 * 96
    service.store.close()

    again = Service(config, clock=late, monotonic=late.monotonic)
    again.startup_catch_up()
    rows = again.store.all_batches("events")
    assert len(rows) == 1 + 3 * 96 and all(r.status == "committed" for r in rows)
    assert_ledger_matches_disk(again)
    again.store.close()


def test_wall_clock_jumps_forward_and_back(make_config, caplog):
    caplog.set_level(logging.WARNING, logger="app")
    config = make_config(emulated_mode={"enabled": True, "company_batch_interval": "PT10S",
                                        "driver_batch_interval": "PT10S"},
                         scheduling={"max_catch_up_windows": 50})
    with freeze_time("2026-11-25T20:00:05Z") as frozen:
        service = Service(config, executor=DebugExecutor())  # monotonic stays real: a jump shows
        executed: queue.Queue = queue.Queue()
        service.scheduler.add_listener(executed.put, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)

        def fire() -> None:
            service.scheduler.wakeup()
            boundary_jobs = 0
            while boundary_jobs < 2:  # the prepare-ahead jobs run too; the boundary jobs are counted
                event = executed.get(timeout=5)
                assert event.code == EVENT_JOB_EXECUTED
                boundary_jobs += event.job_id in JOB_STREAMS

        try:
            service.start(catch_up_in_background=False)
            frozen.move_to("2026-11-25T20:00:10.001Z")
            fire()
            frozen.move_to("2026-11-25T23:00:10.001Z")  # three hours ahead
            fire()
            rows = service.store.all_batches("events")
            assert rows[-1].window.end == utc(2026, 11, 25, 23, 0, 10)
            assert [r.reason for r in rows if r.status == "skipped"] == ["catch_up_limit"]
            assert len([r for r in rows if r.status == "committed"]) == 2 + 50
            before = [(r.batch_id, r.status) for r in service.store.all_batches("events")]

            frozen.move_to("2026-11-25T22:55:00Z")  # five minutes back
            service.wake("events")
            service.wake("companies")
            assert [(r.batch_id, r.status) for r in service.store.all_batches("events")] == before

            frozen.move_to("2026-11-25T23:00:30.001Z")  # time passes the ledger again
            service.wake("companies")
            service.wake("events")
            rows = service.store.all_batches("events")
            assert rows[-1].window.end == utc(2026, 11, 25, 23, 0, 30)
            assert len({r.batch_id for r in rows}) == len(rows)
            assert all(a.window.end == b.window.start for a, b in zip(rows, rows[1:], strict=False))
        finally:
            service.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert any("jumped forward" in m for m in messages)
    assert any("jumped backwards" in m for m in messages)


def test_a_stop_waits_for_the_commit_of_a_batch_already_visible(make_config, monkeypatch):
    """A window past its last checkpoint is published before the stop; its ledger commit is slow (a busy
    disk): the stop waits for it rather than returning (and the caller closing the store) with the batch
    visible but not in the ledger."""
    import threading

    from app.service.pipeline import COMPANIES
    from app.store.store import Store

    config = production(make_config, bound=10)
    start = utc(2026, 11, 25, 12, 0, 30)
    service = Service(config, clock=Clock(start))
    committing, real_commit = threading.Event(), Store.commit

    def slow_commit(store, *args, **kwargs):
        committing.set()
        time.sleep(1.0)  # the commit outlasts the stop's first wait below
        return real_commit(store, *args, **kwargs)

    monkeypatch.setattr(Store, "commit", slow_commit)
    window = service.pipeline.interval(COMPANIES)
    making = threading.Thread(target=service.pipeline.catch_up, args=(COMPANIES, start), kwargs={"limit": 1})
    making.start()
    assert committing.wait(30)
    assert service.stop(timeout=0.1) is True  # waited for the window in flight
    making.join(10)
    rows = service.store.all_batches(COMPANIES)
    assert rows and all(row.status == "committed" for row in rows) and rows[-1].window.length == window
    assert_ledger_matches_disk(service)
    service.store.close()
