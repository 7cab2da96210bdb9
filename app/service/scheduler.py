"""APScheduler wiring: per stream, a job on its UTC-aligned boundaries that only says "wake up", and one
a little before each boundary that prepares the closing window's batch."""

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
PREPARE_JOB_IDS = {"events": "0-prepare-driver-events", "companies": "0-prepare-company-onboarding"}
# How long before its boundary a window's batch is prepared: a quarter of the interval, at most
# PREPARE_LEAD_MAX_S (a 1 s cadence prepares 250 ms ahead, a 15-minute one 5 s ahead).
PREPARE_LEAD_FRACTION = 0.25
PREPARE_LEAD_MAX_S = 5.0


def prepare_lead(interval: timedelta) -> timedelta:
    return min(interval * PREPARE_LEAD_FRACTION, timedelta(seconds=PREPARE_LEAD_MAX_S))


def aligned_trigger(interval: timedelta, ahead: timedelta = timedelta(0)) -> IntervalTrigger:
    """Fires on epoch multiples of ``interval`` (an anchor in 1970 makes the grid absolute), or
    ``ahead`` before each."""
    return IntervalTrigger(seconds=int(interval.total_seconds()), start_date=EPOCH - ahead, timezone="UTC")


def build_scheduler(
    intervals: dict[str, timedelta],
    wake: Callable[[str], object],
    executor: BaseExecutor | None = None,
    prepare: Callable[[str], object] | None = None,
) -> BackgroundScheduler:
    """A scheduler (not started) with one job per stream (and with ``prepare``, one ahead of each of its
    boundaries); the ledger, not APScheduler, decides what to produce."""
    scheduler = BackgroundScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": executor or ThreadPoolExecutor(max_workers=4)},
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        timezone="UTC",
    )
    for job_id, stream in JOB_STREAMS.items():
        scheduler.add_job(wake, trigger=aligned_trigger(intervals[stream]), args=[stream], id=job_id,
                          name=f"{stream} batches", replace_existing=True)
        if prepare is not None:
            scheduler.add_job(prepare, trigger=aligned_trigger(intervals[stream], prepare_lead(intervals[stream])),
                              args=[stream], id=PREPARE_JOB_IDS[stream], name=f"{stream} batches ahead",
                              replace_existing=True)
    return scheduler
