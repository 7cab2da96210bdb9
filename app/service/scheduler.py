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

# Jobs due at the same instant are handed to the executor in id order (APScheduler's memory job
# store sorts ties by id): the numbers put the events job first at a boundary both streams share.
DRIVER_JOB_ID = "1-driver-events"
COMPANY_JOB_ID = "2-company-onboarding"
JOB_STREAMS = {DRIVER_JOB_ID: "events", COMPANY_JOB_ID: "companies"}


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
