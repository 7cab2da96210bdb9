"""APScheduler wiring: two interval jobs on UTC-aligned boundaries that only say "wake up"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from apscheduler.executors.base import BaseExecutor
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from app.core.timeline import EPOCH

COMPANY_JOB_ID = "company_onboarding"
DRIVER_JOB_ID = "driver_events"
JOB_STREAMS = {COMPANY_JOB_ID: "companies", DRIVER_JOB_ID: "events"}


def aligned_trigger(interval: timedelta) -> IntervalTrigger:
    """Fires on epoch multiples of ``interval`` (an anchor in 1970 makes the grid absolute)."""
    return IntervalTrigger(seconds=int(interval.total_seconds()), start_date=EPOCH, timezone="UTC")


def build_scheduler(
    intervals: dict[str, timedelta],
    wake: Callable[[str], object],
    executor: BaseExecutor | None = None,
) -> BackgroundScheduler:
    """A scheduler (not started) with one job per stream; the ledger, not APScheduler, decides what to produce."""
    scheduler = BackgroundScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": executor or ThreadPoolExecutor(max_workers=4)},
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        timezone="UTC",
    )
    for job_id, stream in JOB_STREAMS.items():
        scheduler.add_job(wake, trigger=aligned_trigger(intervals[stream]), args=[stream], id=job_id,
                          name=f"{stream} batches", replace_existing=True)
    return scheduler
