"""DeferredTask: one run for a burst of requests, after the settle time; nothing requested is dropped."""

from __future__ import annotations

import threading

from app.service.deferred import DeferredTask
from tests.conftest import wait_until


def test_a_burst_of_requests_is_one_run_after_the_settle_time():
    runs: list[int] = []
    task = DeferredTask(lambda: runs.append(1), settle_s=0.5, name="t")
    task.start()
    try:
        for _ in range(5):
            task.request()
        assert runs == []  # still settling
        wait_until(lambda: runs == [1], timeout=5, what="the deferred run")
        task.request()
        wait_until(lambda: runs == [1, 1], timeout=5, what="the second run")
    finally:
        task.stop()
    assert runs == [1, 1]


def test_stop_runs_what_is_pending_and_later_requests_run_in_the_caller():
    runs: list[str] = []
    task = DeferredTask(lambda: runs.append(threading.current_thread().name), settle_s=60, name="t")
    task.start()
    task.request()
    task.stop()
    assert runs == [threading.current_thread().name]  # not left waiting out the 60 s
    task.request()
    assert len(runs) == 2


def test_a_failing_task_does_not_end_the_thread(caplog):
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")

    task = DeferredTask(flaky, settle_s=0.01, name="t")
    task.start()
    try:
        task.request()
        wait_until(lambda: len(calls) == 1, timeout=5, what="the first run")
        task.request()
        wait_until(lambda: len(calls) == 2, timeout=5, what="the run after the failure")
    finally:
        task.stop()
    assert "deferred task failed" in caplog.text
