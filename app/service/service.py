"""The running service: scheduler, lifecycle and stats around the pipeline, plus `fleetgen run`."""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.base import BaseExecutor

from app.core.config import Config, effective_settings
from app.core.errors import StoreError
from app.core.timeline import align_to_interval, align_up, format_timestamp, from_epoch_seconds, window_for_firing
from app.service.broadcast import Broadcaster
from app.service.deferred import DeferredTask
from app.service.lifecycle import Lifecycle
from app.service.logs import LEVELS
from app.service.pipeline import COMPANIES, EVENTS, STREAMS, Outcome, Pipeline
from app.service.scheduler import COMPANY_JOB_ID, DRIVER_JOB_ID, build_scheduler
from app.service.stats import ServiceStats
from app.store import Store
from app.store.store import LedgerRow

log = logging.getLogger(__name__)
IN_FLIGHT_GRACE_S = 30.0  # at stop, how long a window already in flight may take to end
CLOCK_JUMP_S = 2.0
SWITCH_INTERVAL_S = 0.001
MANIFEST_SETTLE_S = 0.25
EVENTS_FIRST_WAIT_S = 0.25
JOB_OF_STREAM = {COMPANIES: COMPANY_JOB_ID, EVENTS: DRIVER_JOB_ID}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CatchUpState:
    """Start-up catch-up progress, replaced whole on every change (read by request threads)."""

    running: bool = False
    stream: str | None = None
    windows_done: int = 0
    finished_at: float | None = None


@dataclass(frozen=True)
class ServiceSnapshot:
    """The service's state at one instant, for the health document."""

    now: datetime
    started_at: datetime
    config: Config
    status: str  # running | paused | degraded
    reasons: list[str]  # why degraded
    paused: bool
    shutdown_requested: bool
    streams: dict[str, dict[str, Any]]
    next_runs: dict[str, datetime | None]
    intervals: dict[str, timedelta]
    auto_reinit: dict[str, Any]
    catch_up: CatchUpState
    quality: dict[str, Any]
    state_file: str  # where the ledger lives (credentials masked)


def settle_heap() -> None:
    """Once start-up is done, move every object alive (modules, roster, store, Faker pools) out of the
    collector's sight. A full collection otherwise walks them all: a 77 ms pause every ~40 s at a 1 s
    cadence, landing on whatever batch is being made. Only objects created later are scanned."""
    gc.collect()
    gc.freeze()


def unwell_reasons(now: datetime, streams: dict[str, dict[str, Any]], intervals: dict[str, timedelta],
                   catching_up: bool) -> list[str]:
    """Why a running service is degraded: a stream whose latest window failed (or is blocked), or
    that is more than one interval behind the latest closed window."""
    reasons = []
    for stream, entry in streams.items():
        if entry.get("last_outcome") == "failed":
            reasons.append(f"{stream}: window {entry.get('last_failed_batch')} failed: {entry.get('last_error')}")
            continue
        if catching_up:
            continue
        interval = intervals[stream]
        closed_until = align_to_interval(now, interval)
        end = entry.get("last_interval_end_s")
        if end is None:
            continue  # nothing accounted for yet (new or cleaned): a failure of its first window says it
        reference = from_epoch_seconds(end)
        behind = int((closed_until - reference) / interval)
        if behind > 1:
            since = format_timestamp(reference)
            reasons.append(f"{stream}: {behind} windows behind (nothing produced for windows after {since})")
    return reasons


class Service:
    """Everything `fleetgen run` runs except the HTTP server; tests drive it directly."""

    def __init__(self, config: Config, mode_source: str = "default", *,
                 clock: Callable[[], datetime] = utc_now, executor: BaseExecutor | None = None,
                 store: Store | None = None, monotonic: Callable[[], float] = time.monotonic,
                 freeze_heap: bool = False):
        self.config = config
        self.monotonic = monotonic  # bound at import: a faked wall clock in tests leaves it real
        self.freeze_heap = freeze_heap  # the process is the service's own (`fleetgen run`)
        self.mode_source = mode_source
        self.clock = clock
        self.store = store or Store.for_config(config)
        self.broadcaster = Broadcaster()
        self._state_file = self.store.location  # for health; the URL never changes
        self.pipeline = Pipeline(config, self.store, on_outcome=self._on_outcome, log_fields=self._cadence)
        self.lifecycle = Lifecycle(config, self.store, self.pipeline, self.broadcaster)
        self.stats = ServiceStats(self.store, monotonic)
        self.shutdown_requested = threading.Event()
        self.started_at: datetime | None = None
        self.catch_up = CatchUpState()
        self.scheduler = build_scheduler({COMPANIES: config.active_company_interval,
                                          EVENTS: config.active_driver_interval}, self.scheduled_wake, executor,
                                         prepare=self.prepare_next)
        self._startup_thread: threading.Thread | None = None
        self._manifest_writer: DeferredTask | None = None
        self._last_wake: dict[str, tuple[datetime, float]] = {}
        self._events_woke = threading.Condition()
        self._events_through: datetime | None = None  # boundary of the latest finished events wake-up

    # ---- start / stop -------------------------------------------------------------------------

    def start(self, catch_up_in_background: bool = True) -> None:
        # Hand the GIL over sooner than the default 5 ms: a job waking at a boundary and API
        # requests then wait less behind a batch being generated on another thread.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.started_at = self.clock()
        self.pipeline.prepare()  # batches abandoned by a crash: never visible; their claims released
        log.info("fleetgen starting", extra={"fields": {
            "mode": self.config.generation_mode, "pid": os.getpid(),
            "data_dir": str(self.config.output.data_dir), "paused": self.lifecycle.paused,
            "effective": effective_settings(self.config, self.mode_source)}})
        # The manifest follows a boundary's batches instead of competing with them for disk and GIL.
        self._manifest_writer = DeferredTask(self.pipeline.write_pending_manifest, settle_s=MANIFEST_SETTLE_S,
                                             name="fleetgen-manifest")
        self._manifest_writer.start()
        self.pipeline.manifest_writer = self._manifest_writer
        self.scheduler.start()
        if catch_up_in_background:
            self._startup_thread = threading.Thread(target=self.startup_catch_up, name="fleetgen-startup",
                                                    daemon=True)
            self._startup_thread.start()
        else:
            self.startup_catch_up()

    def startup_catch_up(self) -> None:
        """Baseline on an empty roster, then every window missed while the service was down."""
        if self.lifecycle.paused:
            log.info("starting paused: nothing is produced until resume")
            return
        done = 0
        self.catch_up = CatchUpState(running=True)
        try:
            for stream in (EVENTS, COMPANIES):
                self.catch_up = CatchUpState(running=True, stream=stream, windows_done=done)
                done += len(self.wake(stream, fired=False))
        finally:
            self.catch_up = CatchUpState(windows_done=done, finished_at=time.time())
            if self.freeze_heap:
                settle_heap()


    def stop(self, timeout: float = 1.5) -> bool:
        """Stop producing; True when no batch was left in flight."""
        self.shutdown_requested.set()
        self.pipeline.abandon.set()
        try:
            self.scheduler.shutdown(wait=False)
        except Exception:  # noqa: BLE001 - already stopped
            pass
        idle = self.pipeline.wait_idle(timeout)
        if not idle:
            # The window in flight stops at its next checkpoint, or it is past the last one: its batch is (or
            # is about to be) visible, and its ledger commit must land before the caller closes the store,
            # however slow the disk is just now (a batch left visible but uncommitted waits for a restart).
            log.info("waiting for the window in flight", extra={"fields": {"up_to_s": IN_FLIGHT_GRACE_S}})
            idle = self.pipeline.wait_idle(IN_FLIGHT_GRACE_S)
        idle = idle and self.lifecycle.wait_reinit(timeout)
        if idle:
            self.pipeline.discard_prepared()
        if self._manifest_writer is not None:
            self._manifest_writer.stop()  # the last commits' counters reach the manifest
        log.info("fleetgen stopped", extra={"fields": {"clean": idle}})
        return idle

    # ---- the jobs -----------------------------------------------------------------------------

    def scheduled_wake(self, stream: str) -> list[Outcome]:
        """A scheduler job firing. At a boundary both streams share, the events batch goes first: the two
        jobs share one interpreter lock, so made at the same time both finish late, while one after the
        other the first finishes in about half the time and the second no later. The company job waits
        for the events job of its boundary at most ``EVENTS_FIRST_WAIT_S`` (events batches only need
        companies of windows that closed at their own start, so they never wait for this one)."""
        woke_at = self.clock()
        boundary = self.shared_boundary(woke_at)
        if stream == COMPANIES and boundary is not None:
            with self._events_woke:
                self._events_woke.wait_for(lambda: (self._events_through is not None
                                                    and self._events_through >= boundary)
                                           or self.shutdown_requested.is_set(), timeout=EVENTS_FIRST_WAIT_S)
        try:
            return self.wake(stream)
        finally:
            if stream == EVENTS:
                with self._events_woke:
                    self._events_through = align_to_interval(woke_at, self.config.active_driver_interval)
                    self._events_woke.notify_all()

    def prepare_next(self, stream: str) -> bool:
        """The job a little before each boundary: stage the closing window's batch, so that the boundary
        only has to make it visible (see ``Pipeline.prepare_ahead``). Nothing while paused, stopping or
        re-initialising, nor when the job runs so late that the boundary is already behind it."""
        if self.shutdown_requested.is_set() or self.lifecycle.paused or self.lifecycle.reinit_running:
            return False
        now = self.clock()
        interval = self.pipeline.interval(stream)
        boundary = align_up(now, interval)
        if boundary - now > interval / 2:
            return False
        return self.pipeline.prepare_ahead(stream, window_for_firing(boundary, interval))

    def shared_boundary(self, now: datetime) -> datetime | None:
        """The boundary just passed at ``now`` when it ends a window of both streams, else None."""
        events = align_to_interval(now, self.config.active_driver_interval)
        return events if events == align_to_interval(now, self.config.active_company_interval) else None

    def wake(self, stream: str, fired: bool = True) -> list[Outcome]:
        """A job firing: account for every closed window of the stream (produce, or skip if paused).

        The moment the job started is the firing reference: the latest window closed by then is on
        cadence, its firing delay this moment minus the window's end (however late the job started);
        older windows it produces are catch-up. Every window's lateness is its publish time minus its end.
        """
        if self.shutdown_requested.is_set():
            return []
        now = self.clock()
        self._watch_clock(stream, now)
        skip = "paused" if self.lifecycle.paused else None
        try:
            outcomes = self.pipeline.catch_up(stream, now, skip_reason=skip, woke_at=now if fired else None,
                                              should_stop=self._should_stop)
            self.pipeline.retry_manifests()
            self.sync_stats(stream)
            return outcomes
        except StoreError as exc:
            log.error("metadata store unavailable; the windows stay due", extra={"fields": {
                "stream": stream, "error": str(exc)}})
            self.stats.note_error(stream, str(exc))
            return []

    def sync_stats(self, stream: str) -> None:
        """Align health's totals with the store's counters, which another process (`fleetgen
        generate` or `backfill` on the same data directory) may have moved."""
        with self.pipeline.holding(stream):  # no batch of the stream commits between read and update
            counter = self.store.counters().get(stream, {})
            self.stats.sync(stream, counter)

    def _watch_clock(self, stream: str, now: datetime) -> None:
        """Say so in the log when the wall clock jumps (NTP step, suspend, manual change)."""
        monotonic = self.monotonic()
        previous = self._last_wake.get(stream)
        self._last_wake[stream] = (now, monotonic)
        if previous is None:
            return
        wall = (now - previous[0]).total_seconds()
        drift = wall - (monotonic - previous[1])
        if abs(drift) < CLOCK_JUMP_S:
            return
        ledger_end = self.store.ledger_end(stream)
        if drift > 0:
            message = ("wall clock jumped forward: windows since the last one are caught up in order, "
                       f"at most {self.config.scheduling.max_catch_up_windows}, older ones recorded as skipped")
        else:
            message = ("wall clock jumped backwards: nothing is produced until it passes the end of the "
                       "last window again; no window is produced twice")
        log.warning(message, extra={"fields": {"stream": stream, "jump_s": round(drift, 3),
                                               "ledger_end": ledger_end}})

    def _should_stop(self) -> bool:
        return self.shutdown_requested.is_set() or self.lifecycle.paused

    def _on_outcome(self, outcome: Outcome) -> None:
        point = self.stats.record(outcome)
        if point is not None:
            self.broadcaster.publish("batch", point)
        elif outcome.status == "failed":
            self.broadcaster.publish("failure", {"stream": outcome.stream, "batch_id": outcome.window.batch_id,
                                                 "error": outcome.reason})

    def _cadence(self, stream: str) -> dict[str, Any]:
        return {"batches_per_minute": self.stats.batches_per_minute(stream) + 1}

    # ---- lifecycle ----------------------------------------------------------------------------

    def pause(self) -> dict[str, Any]:
        return self.lifecycle.pause()

    def resume(self) -> dict[str, Any]:
        return self.lifecycle.resume(self.clock)

    def clean(self) -> dict[str, Any]:
        result = self.lifecycle.clean()
        self.stats.reload(self.store)
        return result

    # ---- health -------------------------------------------------------------------------------

    def next_run_time(self, stream: str) -> datetime | None:
        job = self.scheduler.get_job(JOB_OF_STREAM[stream])
        return getattr(job, "next_run_time", None) if job else None

    def snapshot(self) -> ServiceSnapshot:
        """Everything health shows, read without touching the store (answers in microseconds)."""
        now = self.clock()
        next_runs = {}
        for stream in STREAMS:
            next_runs[stream] = self.next_run_time(stream)
        streams = self.stats.snapshot()
        intervals = {stream: self.pipeline.interval(stream) for stream in STREAMS}
        paused = self.lifecycle.paused
        catching_up = self.catch_up.running or self.lifecycle.reinit_running
        reasons = [] if paused else unwell_reasons(now, streams, intervals, catching_up)
        return ServiceSnapshot(
            now=now, started_at=self.started_at or now, config=self.config,
            status="paused" if paused else "degraded" if reasons else "running", reasons=reasons,
            paused=paused, shutdown_requested=self.shutdown_requested.is_set(),
            streams=streams, next_runs=next_runs, intervals=intervals,
            auto_reinit=self.lifecycle.auto_reinit_state(), catch_up=self.catch_up,
            quality=self.stats.quality(), state_file=self._state_file)

    # ---- reads for the API (routes reach the store only through here) --------------------------

    def logs(self, limit: int, since: float | None = None, level: str | None = None) -> list[dict[str, Any]]:
        """Newest first; ``level`` keeps that level and the ones above it."""
        levels = LEVELS[LEVELS.index(level):] if level is not None else None
        return self.store.query_logs(limit=limit, since=since, levels=levels)

    def recent_batches(self, stream: str | None, limit: int) -> list[LedgerRow]:
        return self.store.recent_batches(stream, limit)
