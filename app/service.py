"""The running service: scheduler, lifecycle and stats around the pipeline, plus `fleetgen run`."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.base import BaseExecutor

from app.broadcast import Broadcaster
from app.config import Config, effective_settings, format_duration
from app.errors import StoreError
from app.lifecycle import Lifecycle, remove_staging
from app.pipeline import COMPANIES, EVENTS, Outcome, Pipeline
from app.scheduler import COMPANY_JOB_ID, DRIVER_JOB_ID, build_scheduler
from app.stats import ServiceStats
from app.store import Store
from app.timeline import align_to_interval, format_timestamp

log = logging.getLogger(__name__)
CLOCK_JUMP_S = 2.0
SWITCH_INTERVAL_S = 0.001
JOB_OF_STREAM = {COMPANIES: COMPANY_JOB_ID, EVENTS: DRIVER_JOB_ID}


def utc_now() -> datetime:
    return datetime.now(UTC)


class Service:
    """Everything `fleetgen run` runs except the HTTP server; tests drive it directly."""

    def __init__(self, config: Config, mode_source: str = "default", *,
                 clock: Callable[[], datetime] = utc_now, executor: BaseExecutor | None = None,
                 store: Store | None = None, monotonic: Callable[[], float] = time.monotonic):
        self.config = config
        self.monotonic = monotonic  # bound at import: a faked wall clock in tests leaves it real
        self.mode_source = mode_source
        self.clock = clock
        self.store = store or Store.for_config(config)
        self.broadcaster = Broadcaster()
        self.pipeline = Pipeline(config, self.store, on_outcome=self._on_outcome, log_fields=self._cadence)
        self.lifecycle = Lifecycle(config, self.store, self.pipeline, self.broadcaster)
        self.stats = ServiceStats(self.store, monotonic)
        self.shutdown_requested = threading.Event()
        self.started_at: datetime | None = None
        self.catch_up = {"running": False, "stream": None, "windows_done": 0, "finished_at": None}
        self.scheduler = build_scheduler({COMPANIES: config.active_company_interval,
                                          EVENTS: config.active_driver_interval}, self.wake, executor)
        self._startup_thread: threading.Thread | None = None
        self._last_wake: dict[str, tuple[datetime, float]] = {}

    # ---- start / stop -------------------------------------------------------------------------

    def start(self, catch_up_in_background: bool = True) -> None:
        # Hand the GIL over sooner than the default 5 ms: a job waking at a boundary and API
        # requests then wait less behind a batch being generated on another thread.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.started_at = self.clock()
        self.pipeline.layout.ensure()
        remove_staging(self.pipeline.layout.staging)  # batches abandoned by a crash: never visible
        self.store.set_state("service_pid", os.getpid())
        log.info("fleetgen starting", extra={"fields": {
            "mode": self.config.generation_mode, "pid": os.getpid(),
            "data_dir": str(self.config.output.data_dir), "paused": self.lifecycle.paused,
            "effective": effective_settings(self.config, self.mode_source)}})
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
        self.catch_up.update(running=True)
        try:
            for stream in (EVENTS, COMPANIES):
                self.catch_up["stream"] = stream
                outcomes = self.wake(stream, fired=False)
                self.catch_up["windows_done"] += len(outcomes)
        finally:
            self.catch_up.update(running=False, stream=None, finished_at=time.time())

    def stop(self, timeout: float = 1.5) -> bool:
        """Stop producing; True when no batch was left in flight."""
        self.shutdown_requested.set()
        self.pipeline.abandon.set()
        try:
            self.scheduler.shutdown(wait=False)
        except Exception:  # noqa: BLE001 - already stopped
            pass
        idle = self.pipeline.wait_idle(timeout)
        log.info("fleetgen stopped", extra={"fields": {"clean": idle}})
        return idle

    # ---- the jobs -----------------------------------------------------------------------------

    def wake(self, stream: str, fired: bool = True) -> list[Outcome]:
        """A job firing: account for every closed window of the stream (produce, or skip if paused).

        The firing delay of the window closing at this boundary is measured here, at job entry.
        """
        if self.shutdown_requested.is_set():
            return []
        now = self.clock()
        self._watch_clock(stream, now)
        boundary = align_to_interval(now, self.pipeline.interval(stream))
        firing = (boundary, (now - boundary).total_seconds()) if fired else None
        skip = "paused" if self.lifecycle.paused else None
        try:
            outcomes = self.pipeline.catch_up(stream, now, skip_reason=skip, firing=firing,
                                              should_stop=self._should_stop)
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
        return {"batches_per_minute": self.stats.snapshot()[stream]["batches_per_minute"] + 1}

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

    def health(self) -> dict[str, Any]:
        now = self.clock()
        started = self.started_at or now
        uptime = max(0.0, (now - started).total_seconds())
        streams = self.stats.snapshot()
        generators = {}
        for stream, key in ((COMPANIES, "company_generator"), (EVENTS, "driver_generator")):
            entry = dict(streams[stream])
            entry["interval_seconds"] = int(self.pipeline.interval(stream).total_seconds())
            next_run = self.next_run_time(stream)
            entry["next_run_time"] = format_timestamp(next_run) if next_run else None
            entry["seconds_to_next_run"] = (round((next_run - now).total_seconds(), 3)
                                            if next_run else None)
            if stream == COMPANIES:
                entry.pop("last_interval_end", None)
            generators[key] = entry
        quality = self.config.quality_injection
        body: dict[str, Any] = {
            "status": "paused" if self.lifecycle.paused else "running",
            "timestamp": format_timestamp(now),
            "generation_mode": self.config.generation_mode,
            "uptime": {"seconds": round(uptime, 3), "hours": round(uptime / 3600, 4),
                       "start_time": format_timestamp(started)},
            **generators,
            "lifecycle": {"paused": self.lifecycle.paused,
                          "shutdown_requested": self.shutdown_requested.is_set()},
            "auto_reinit": self.lifecycle.auto_reinit_state(),
            "catch_up": dict(self.catch_up),
            "quality": {"enabled": quality.enabled, "error_rate": quality.error_rate, **self.stats.quality()},
            "seed": self.config.seed,
        }
        if self.config.emulated_mode.enabled:
            em = self.config.emulated_mode
            body["emulated_config"] = {
                "company_interval_seconds": int(em.company_batch_interval.total_seconds()),
                "driver_interval_seconds": int(em.driver_batch_interval.total_seconds()),
                "companies_per_batch": em.companies_per_batch,
                "events_per_batch_range": [em.events_per_batch_min, em.events_per_batch_max],
            }
        return body


def run_service(config: Config, mode_source: str) -> int:
    """`fleetgen run`: service + API + dashboard until SIGINT/SIGTERM; exit 0 on a clean stop."""
    from waitress.server import create_server

    from app.api import create_app
    from app.errors import FleetgenError
    from app.logs import StoreHandler, configure_logging

    configure_logging()
    service = Service(config, mode_source)
    store_handler = StoreHandler(service.store)
    logging.getLogger().addHandler(store_handler)
    app = create_app(config, service)
    try:
        server = create_server(app, host=config.api.host, port=config.api.port, threads=16,
                               channel_timeout=30, ident="fleetgen")
    except OSError as exc:
        raise FleetgenError(f"cannot listen on {config.api.host}:{config.api.port}: {exc.strerror} "
                            "(use --port to pick another)") from None
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        log.info("signal received", extra={"fields": {"signal": signal.Signals(signum).name}})
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    service.start()
    http = threading.Thread(target=server.run, name="fleetgen-http", daemon=True)
    http.start()
    log.info("dashboard ready", extra={"fields": {
        "url": f"http://{config.api.host}:{server.effective_port}/", "mode": config.generation_mode,
        "company_interval": format_duration(config.active_company_interval),
        "driver_interval": format_duration(config.active_driver_interval)}})
    stop.wait()
    service.stop(timeout=1.5)
    server.close()
    store_handler.close()
    logging.getLogger().removeHandler(store_handler)
    return 0
