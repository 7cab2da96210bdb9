"""Claim → generate → publish → commit, for one window or every due window of a stream."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from app.core import bronze, memory
from app.core.config import GEOGRAPHIES, Config, format_duration
from app.core.errors import Abandoned, ConfigError, FleetgenError, RangeError, StoreError
from app.core.generation import render as r
from app.core.generation.batch import generate_in_parts
from app.core.generation.columns import ColumnBatch
from app.core.generation.companies import CompanyBatch
from app.core.generation.emulated_fleet import FleetState
from app.core.generation.encoding import issues_ahead, render_late, render_records
from app.core.generation.events import DriverPool, EventBatch, max_delay_s
from app.core.generation.parquet import record_chunks
from app.core.remote_bronze import RemoteBronze
from app.core.schema import schema_files
from app.core.timeline import Window, align_to_interval, align_up, due_windows, format_timestamp, from_epoch_seconds
from app.service.deferred import DeferredTask
from app.store import Store
from app.store.roster import NewCompanies, RosterRows
from app.store.store import CLAIMED_ELSEWHERE, CommitStats, LedgerRow, LostClaim

log = logging.getLogger(__name__)
SCHEMA_FILE_NAMES = tuple(schema_files())

COMPANIES, EVENTS = "companies", "events"
STREAMS = (COMPANIES, EVENTS)


@dataclass(frozen=True)
class Made:
    """A generated and published batch, ready for the ledger."""

    stats: CommitStats
    companies: NewCompanies | None
    adopted: bool
    carried: dict[str, Any] | None = None


@dataclass(frozen=True)
class Generated:
    """A window's batch generated and staged (not yet visible), with what the ledger needs of it."""

    window: Window
    generated_at: float  # epoch s
    record_count: int
    corrupted_count: int
    issue_counts: dict[str, int]
    companies: NewCompanies | None
    staged: bronze.Staged
    work_s: float  # generating and staging
    carried: dict[str, Any] | None = None  # what the batch hands the next events batch (emulated fleet)
    late_count: int = 0  # events batches: records that arrived late from earlier windows
    clean_epoch: int | None = None  # prepared ahead: the roster's epoch then (a clean starts a new one)


@dataclass(frozen=True)
class Outcome:
    stream: str
    window: Window
    status: str  # committed | already | failed | skipped
    record_count: int = 0
    corrupted_count: int = 0
    issue_counts: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    firing_delay_s: float | None = None
    reason: str | None = None
    adopted: bool = False
    lateness_ms: float | None = None  # publish - window end
    catch_up: bool = False  # not produced by the scheduled wake-up that follows its window

    def as_dict(self) -> dict[str, Any]:
        return {"stream": self.stream, "batch_id": self.window.batch_id, "status": self.status,
                "interval_start": format_timestamp(self.window.start),
                "interval_end": format_timestamp(self.window.end),
                "record_count": self.record_count, "corrupted_count": self.corrupted_count,
                "issue_counts": self.issue_counts, "duration_s": round(self.duration_s, 6),
                "firing_delay_s": self.firing_delay_s, "lateness_ms": self.lateness_ms,
                "catch_up": self.catch_up, "reason": self.reason}


class Pipeline:
    """Produces windows for both streams through the ledger; safe to call from several threads."""

    def __init__(self, config: Config, store: Store, on_outcome: Callable[[Outcome], None] | None = None,
                 log_fields: Callable[[str], dict[str, Any]] | None = None):
        self.config = config
        self.store = store
        self.layout = bronze.layout_of(config)
        self.on_outcome = on_outcome
        self.log_fields = log_fields
        self.abandon = threading.Event()  # set at shutdown: in-flight batches are dropped, not published
        self._roster = RosterRows()
        self._roster_mark: tuple[int, int | None] | None = None
        self._roster_lock = threading.Lock()
        self._manifest_lock = threading.Lock()
        self._manifest_pending = False
        self.manifest_writer: DeferredTask | None = None  # the service's; without one, written at once
        self._locks = {COMPANIES: threading.RLock(), EVENTS: threading.RLock()}
        self._prepared: dict[str, Generated] = {}  # a batch staged ahead of its boundary, per stream
        self._descriptors_uploaded = False

    @contextmanager
    def stream_locks(self) -> Iterator[None]:
        """Hold both streams: no window is in flight while the caller runs (clean)."""
        with self._locks[EVENTS], self._locks[COMPANIES]:
            yield

    def holding(self, stream: str) -> threading.RLock:
        """The stream's lock: no window of the stream is in flight while it is held."""
        return self._locks[stream]

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no window is in flight; False if one still is after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        for lock in (self._locks[EVENTS], self._locks[COMPANIES]):
            if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                return False
            lock.release()
        return True

    def interval(self, stream: str) -> timedelta:
        return self.config.active_company_interval if stream == COMPANIES else self.config.active_driver_interval

    def prepare(self) -> None:
        """Start-up of a writer holding the data-directory lock: batches a crash left half-written are
        never visible (staging is emptied) and claims of a writer that is gone are handed back."""
        foreign = self.layout.foreign_batches()
        if foreign:
            raise ConfigError([
                f"output.layout: {self.config.output.layout!r}, but {self.layout.root} already holds batches in "
                f"the other layout (e.g. {foreign[0]}); a data directory keeps one "
                "layout: clean it, or write this layout to another output.data_dir"])
        self.layout.ensure()
        bronze.remove_staging(self.layout.staging)
        renamed = bronze.migrate_legacy_names(self.layout)
        if renamed:
            log.info("batch sidecars renamed to the record-only layout", extra={"fields": {"files": renamed}})
        released = self.store.release_claims()
        if released:
            log.info("claims of a previous writer released", extra={"fields": {"windows": released}})

    # ---- wake-ups -----------------------------------------------------------------------------

    def catch_up(
        self,
        stream: str,
        now: datetime,
        *,
        start_if_empty: datetime | None = None,
        limit: int | None = None,
        skip_reason: str | None = None,
        woke_at: datetime | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> list[Outcome]:
        """Account for every closed window of ``stream`` up to ``now``, oldest first.

        Failed or half-done windows are retried first; new windows are produced (or, with
        ``skip_reason``, recorded as skipped). Stops at the first failure so order holds.
        ``woke_at`` is when a scheduled wake-up started: the latest window closed by then is on cadence.
        Before any company window was ever committed (a new or cleaned data directory) a paused
        stream records nothing: there is no data stream yet, and resume starts it with a baseline.
        """
        with self._locks[stream]:
            if skip_reason is not None and not self.store.has_committed(COMPANIES):
                return []
            interval = self.interval(stream)
            open_rows, last_end_s = self.store.cursor(stream, until_s=int(now.timestamp()))
            last_end = from_epoch_seconds(last_end_s) if last_end_s is not None else None
            if last_end is None and start_if_empty is not None:
                last_end = align_up(start_if_empty, interval)
            bound = self.config.scheduling.max_catch_up_windows if limit is None else limit
            plan = due_windows(last_end, now, interval, bound)
            retries = [] if skip_reason else [row.window for row in open_rows]
            outcomes: list[Outcome] = []
            if skip_reason is not None:
                self.discard_prepared(stream)
            for window in retries:
                if should_stop():
                    return outcomes
                outcomes.append(self.produce(stream, window, company_limit=limit))
                if outcomes[-1].status == "failed":
                    return outcomes
            outcomes += self._record_skipped(stream, plan.skipped)
            if len(plan.produce) > 1:
                log.info("catching up", extra={"fields": {"stream": stream, "windows": len(plan.produce),
                                                          "from": plan.produce[0].batch_id,
                                                          "to": plan.produce[-1].batch_id}})
            for index, window in enumerate(plan.produce):
                if skip_reason is not None:
                    outcomes += self._record_skipped(stream, [(window, skip_reason)], quiet=True)
                    continue
                if should_stop():
                    break
                outcomes.append(self.produce(stream, window, woke_at=woke_at, company_limit=limit))
                if outcomes[-1].status == "failed":
                    break
                if len(plan.produce) > 100 and (index + 1) % 100 == 0:
                    log.info("catch-up progress", extra={"fields": {
                        "stream": stream, "done": index + 1, "total": len(plan.produce)}})
            return outcomes

    def _record_skipped(self, stream: str, ranges: list[tuple[Window, str]], quiet: bool = False) -> list[Outcome]:
        outcomes = []
        for window, reason in ranges:
            if not self.store.skip(stream, window, reason):
                outcomes.append(Outcome(stream, window, "already", reason=reason))
                continue
            if not quiet:
                log.warning("windows skipped", extra={"fields": {
                    "stream": stream, "from": format_timestamp(window.start),
                    "to": format_timestamp(window.end), "reason": reason}})
            outcome = Outcome(stream, window, "skipped", reason=reason)
            outcomes.append(outcome)
            self.report(outcome)
        return outcomes

    def ensure_companies_through(self, moment: datetime, limit: int | None = None) -> None:
        """Account for every company window closing at or before ``moment`` (a driver batch's roster),
        under the same catch-up bound as the driver stream. When the company ledger already reaches
        ``moment`` with nothing open before it, this returns without waiting for the company stream's
        lock: a driver window never waits for the company window being produced for a later boundary."""
        open_rows, last_end = self.store.cursor(COMPANIES, until_s=int(moment.timestamp()))
        if not open_rows and last_end is not None and last_end >= int(moment.timestamp()):
            return
        outcomes = self.catch_up(COMPANIES, moment, limit=limit)
        failed = [o for o in outcomes if o.status == "failed"]
        if failed:
            raise FleetgenError(f"company window {failed[0].window.batch_id} failed: {failed[0].reason}")

    # ---- one window ---------------------------------------------------------------------------

    def produce(self, stream: str, window: Window, woke_at: datetime | None = None,
                company_limit: int | None = None) -> Outcome:
        """Claim → generate → publish → commit one window. The ledger commit is the point of no return:
        an error before it fails this writer's claim (retried later); after it, the window stays
        committed and what follows (manifest, listeners) is best effort."""
        with self._locks[stream]:
            try:
                if stream == EVENTS:
                    self.ensure_companies_through(window.start, company_limit)
                claim = self.store.claim_window(stream, window, woke_at.timestamp() if woke_at else None)
            except FleetgenError as exc:
                outcome = self._failed_before_claim(stream, window, str(exc))
                self.report(outcome)
                return outcome
            if claim.row is None:
                self.discard_prepared(stream)  # another writer has it: a copy prepared here is dropped
                return Outcome(stream, window, "already", reason=claim.reason)
            row = claim.row
            # On cadence: the first attempt, by a scheduled wake-up, at the latest window closed when it
            # woke. Anything else (start-up, retries, a wake-up that came after the next boundary) is
            # catch-up: flagged and counted, its lateness recorded like every window's.
            on_cadence = (woke_at is not None and row.attempts == 1
                          and window.end == align_to_interval(woke_at, self.interval(stream)))
            delay = (woke_at - window.end).total_seconds() if on_cadence and woke_at is not None else None
            try:
                made = self._generate_and_publish(stream, window, row, delay, not on_cadence)
            except Exception as exc:  # noqa: BLE001 - before the commit: recorded on the claim and retried
                outcome = self._attempt_failed(stream, window, row, exc, delay)
            else:
                outcome = self._commit(stream, window, row, made)
            self.report(outcome)
            memory.release()  # the memory kept for the batch's parts, given back while the stream waits
            return outcome

    def _attempt_failed(self, stream: str, window: Window, row: LedgerRow, exc: Exception,
                        delay: float | None) -> Outcome:
        message = f"{type(exc).__name__}: {exc}"
        try:
            self.store.fail(row, message)
        except StoreError:
            pass  # the claim stays pending and this writer's: retried like a failure at the next wake-up
        abandoned = isinstance(exc, Abandoned)
        log.log(logging.INFO if abandoned else logging.ERROR, "batch abandoned" if abandoned else "batch failed",
                extra={"fields": {"stream": stream, "batch_id": window.batch_id, "attempt": row.attempts,
                                  "error": message}},
                exc_info=not isinstance(exc, FleetgenError))
        return Outcome(stream, window, "failed", reason=message, firing_delay_s=delay)

    def _failed_before_claim(self, stream: str, window: Window, message: str) -> Outcome:
        log.error("batch blocked", extra={"fields": {"stream": stream, "batch_id": window.batch_id,
                                                     "error": message}})
        return Outcome(stream, window, "failed", reason=message)

    def _generate_and_publish(self, stream: str, window: Window, row: LedgerRow, delay: float | None,
                              catch_up: bool) -> Made:
        started = time.time()
        prepared = self._take_prepared(stream, window)
        made = prepared or self._generate_and_stage(stream, window)
        meta = batch_meta(self.config, made, bool(row.scheduled_at), catch_up)
        published = bronze.finish_batch(self.layout, made.staged, meta, started, self._checkpoint,
                                        window_end=window.end_s, work_before_s=made.work_s if prepared else 0.0)
        stats = CommitStats(self.config.generation_mode, made.record_count, made.record_count - made.corrupted_count,
                            made.corrupted_count, made.issue_counts, row.scheduled_at, started, time.time(), delay,
                            published.published_at, published.lateness_ms, catch_up)
        return Made(stats, made.companies, published.adopted, made.carried)

    def _generate_and_stage(self, stream: str, window: Window, sync: bool = False) -> Generated:
        pool = self.roster_for(stream, window)
        fleet = self.fleet_before() if stream == EVENTS else None
        return make_batch(self.config, self.layout, stream, window, pool, fleet, self._checkpoint, sync)

    def fleet_before(self) -> FleetState | None:
        """Emulated mode: the drivers on shift as the latest committed events batch left them."""
        if not self.config.emulated_mode.enabled:
            return None
        carried = self.store.carried_state()
        return FleetState.from_json(carried["fleet"]) if carried and "fleet" in carried else None

    # ---- ahead of a boundary ------------------------------------------------------------------

    def prepare_ahead(self, stream: str, window: Window) -> bool:
        """Generate and stage ``window``'s batch before it closes, so that at its boundary only the meta
        file, one fsync round, the rename and the ledger commit remain: the batch becomes visible a few
        milliseconds after the close instead of after a whole generation. Its bytes are those the
        boundary would make (a pure function of the seed, the window and the roster before it).

        Only the next window in ledger order is prepared, and an events window only once its roster is
        complete (every company window closing at its start accounted for); otherwise, or on any error,
        nothing is kept and the boundary makes the batch as usual. False when nothing was prepared."""
        with self._locks[stream]:
            self.discard_prepared(stream)
            open_rows, last_end = self.store.cursor(stream, until_s=window.end_s)
            if open_rows or last_end != window.start_s:
                return False
            if stream == EVENTS:
                # the company windows closing at or before the events window's start (the last boundary of
                # the company cadence at or before it): all committed or skipped
                needed = int(align_to_interval(window.start, self.interval(COMPANIES)).timestamp())
                open_companies, companies_end = self.store.cursor(COMPANIES, until_s=window.start_s)
                if open_companies or companies_end is None or companies_end < needed:
                    return False
            try:
                clean_epoch = self.store.roster_mark()[0]
                generated = self._generate_and_stage(stream, window, sync=True)
                self._prepared[stream] = replace(generated, clean_epoch=clean_epoch)
            except Abandoned:
                return False
            except Exception as exc:  # noqa: BLE001 - the boundary makes the batch instead, and reports
                log.warning("batch not prepared ahead; it is made at its boundary", extra={"fields": {
                    "stream": stream, "batch_id": window.batch_id, "error": f"{type(exc).__name__}: {exc}"}})
                return False
            return True

    def discard_prepared(self, stream: str | None = None) -> None:
        """Drop batches prepared ahead (pause, clean, stop): their staging folders go with them."""
        for name in (stream,) if stream else STREAMS:
            prepared = self._prepared.pop(name, None)
            if prepared is not None:
                bronze.discard(prepared.staged)

    def _take_prepared(self, stream: str, window: Window) -> Generated | None:
        """The batch prepared for ``window`` if it is still what the boundary would make, else None
        (a different window, a roster cleaned since, or its staging folder gone)."""
        prepared = self._prepared.pop(stream, None)
        if prepared is None:
            return None
        if (prepared.window != window or not prepared.staged.staging.is_dir()
                or prepared.clean_epoch != self.store.roster_mark()[0]):
            bronze.discard(prepared.staged)
            return None
        return prepared

    def _commit(self, stream: str, window: Window, row: LedgerRow, made: Made) -> Outcome:
        stats = made.stats
        try:
            mark_before = self.store.commit(row, stats, made.companies, made.carried)
        except LostClaim as exc:
            log.warning("batch not committed: another writer holds the window", extra={"fields": {
                "stream": stream, "batch_id": window.batch_id, "error": str(exc)}})
            return Outcome(stream, window, "already", reason=CLAIMED_ELSEWHERE)
        except Exception as exc:  # noqa: BLE001 - the ledger did not take it: a failed attempt, retried
            return self._attempt_failed(stream, window, row, exc, stats.firing_delay_s)
        # ---- committed: nothing below may change the window's status ----
        if mark_before is not None and made.companies is not None:
            self._take_into_roster(mark_before, window, made.companies)
        self.manifest_due()
        duration = stats.finished_at - stats.started_at
        log.info("batch committed", extra={"fields": {
            "mode": self.config.generation_mode, "stream": stream, "batch_id": window.batch_id,
            "records": stats.record_count, "corrupted": stats.corrupted_count, "duration_s": round(duration, 6),
            "firing_delay_s": None if stats.firing_delay_s is None else round(stats.firing_delay_s, 6),
            "lateness_ms": stats.lateness_ms, "catch_up": stats.catch_up, "attempt": row.attempts,
            **self._log_fields(stream)}})
        return Outcome(stream, window, "committed", stats.record_count, stats.corrupted_count,
                       stats.issue_counts, duration, stats.firing_delay_s, adopted=made.adopted,
                       lateness_ms=stats.lateness_ms, catch_up=stats.catch_up)

    def _log_fields(self, stream: str) -> dict[str, Any]:
        if self.log_fields is None:
            return {}
        try:
            return self.log_fields(stream)
        except Exception:  # noqa: BLE001 - a log decoration must not undo a commit
            return {}

    def roster_for(self, stream: str, window: Window) -> DriverPool | None:
        """What a batch of ``stream`` is made from besides the seed and the window: the roster before it
        (events; companies too with companies.churn, whose changes it records), else None."""
        if stream == EVENTS or self.config.companies.churn.enabled:
            return self.roster_before(window.start_s)
        return None

    def roster_before(self, moment_s: int) -> DriverPool:
        """The driver batch's companies, from a copy of the store's roster kept in memory and brought
        up to date whenever the store's roster mark moved (this or another process committed
        companies, or a clean started it over): O(new companies), never a reload per batch."""
        with self._roster_lock:
            return self._fresh_roster().before(moment_s)

    def roster_rows(self) -> RosterRows:
        """Every company of the ledger's roster as it stands now (brought up to date first)."""
        with self._roster_lock:
            return self._fresh_roster()

    def _fresh_roster(self) -> RosterRows:
        """The cached roster, caught up with the store's mark (the caller holds ``_roster_lock``)."""
        mark = self.store.roster_mark()
        if mark != self._roster_mark:
            cached = self._roster_mark
            if cached is not None and cached[0] == mark[0] and self._roster.last_end == cached[1]:
                self._roster.merge(self.store.load_roster(after_end=cached[1]))
            else:
                self._roster = self.store.load_roster()
            self._roster_mark = mark
        return self._roster

    def _take_into_roster(self, mark_before: tuple[int, int | None], window: Window,
                          companies: NewCompanies) -> None:
        """Companies this writer just committed go straight into the cached roster when it stood at
        the mark they were added to; otherwise the next driver batch catches up from the store."""
        with self._roster_lock:
            if self._roster_mark != mark_before or (mark_before[1] or 0) > window.end_s:
                return
            self._roster.add_window(companies, window.end_s)
            self._roster_mark = (mark_before[0], window.end_s)

    def forget_roster(self) -> None:
        """After clean: the next driver batch reloads the (now empty) roster."""
        with self._roster_lock:
            self._roster, self._roster_mark = RosterRows(), None

    def _checkpoint(self) -> None:
        if self.abandon.is_set():
            raise Abandoned("shutdown requested before the batch became visible; it will be produced on restart")

    def report(self, outcome: Outcome) -> None:
        if self.on_outcome is not None:
            try:
                self.on_outcome(outcome)
            except Exception:  # noqa: BLE001 - a listener must not break production
                log.exception("outcome listener failed")

    # ---- manifests and backfill ---------------------------------------------------------------

    def manifest_due(self) -> None:
        """After a commit: the manifest is a convenience copy of the ledger's counters, written at once
        or, in the service, a moment later on the writer's own thread (``manifest_writer``)."""
        with self._manifest_lock:
            self._manifest_pending = True
        if self.manifest_writer is None:
            self.write_pending_manifest()
        else:
            self.manifest_writer.request()

    def write_pending_manifest(self) -> bool:
        """Write the manifest if a commit moved the counters since it was last written. A failure is a
        warning; it stays due and is tried again after the next commit or wake-up (``retry_manifests``)."""
        with self._manifest_lock:
            if not self._manifest_pending:
                return True
            try:
                self.write_manifests()
            except (OSError, FleetgenError) as exc:
                log.warning("manifest not written; retried after the next batch", extra={"fields": {
                    "error": f"{type(exc).__name__}: {exc}"}})
                return False
            self._manifest_pending = False
            return True

    def retry_manifests(self) -> None:
        if self._manifest_pending:
            self.manifest_due()

    @contextmanager
    def manifests_replaced(self) -> Iterator[None]:
        """Clean: no manifest is written while the caller removes them, and none of the old counters after."""
        with self._manifest_lock:
            yield
            self._manifest_pending = False

    def write_manifests(self) -> None:
        counters = self.store.counters()
        streams = {}
        for stream in bronze.STREAMS:
            counter = counters.get(stream, {})
            last_end = counter.get("last_interval_end")
            streams[stream] = {
                "committed_batches": counter.get("committed_batches", 0),
                "skipped_ranges": counter.get("skipped_ranges", 0),
                "records": counter.get("records", 0),
                "corrupted_records": counter.get("corrupted", 0),
                "issue_counts": counter.get("issue_counts", {}),
                "last_interval_end": format_timestamp(from_epoch_seconds(last_end)) if last_end else None,
            }
        bronze.write_json_atomically(self.layout.manifests / "batch_manifest.json",
                                     {"schema_version": bronze.SCHEMA_VERSION, "seed": self.config.seed,
                                      "streams": streams})
        descriptor = self.layout.manifests / "dataset.md"
        if not descriptor.exists():  # written once; rendering it is not free (YAML dump)
            bronze.write_text_once(descriptor, describe_dataset(self.config))
        if not all((self.layout.schemas / name).exists() for name in SCHEMA_FILE_NAMES):
            for name, text in schema_files().items():
                bronze.write_text_once(self.layout.schemas / name, text)
        if self.layout.remote is not None:
            self._upload_manifests(self.layout.remote)

    def _upload_manifests(self, remote: RemoteBronze) -> None:
        """Object storage: the manifests beside the batches too (the counters each time, the descriptor
        and the schemas once per process: they never change for a data directory)."""
        manifests = self.layout.manifests
        names = ["batch_manifest.json"]
        if not self._descriptors_uploaded:
            names += ["dataset.md", *(f"schemas/{name}" for name in SCHEMA_FILE_NAMES)]
        for name in names:
            remote.upload_file(manifests / name, remote.store.path(f"manifests/{name}"))
        self._descriptors_uploaded = True

    def check_backfill_range(self, start: datetime, end: datetime) -> None:
        """A backfill continues the ledger: RangeError for an empty range or one that would leave a gap."""
        if end <= start:
            raise RangeError("empty", format_timestamp(start), format_timestamp(end))
        for stream in (EVENTS, COMPANIES):
            last = self.store.ledger_end(stream)
            if last is not None and from_epoch_seconds(last) < align_up(start, self.interval(stream)):
                raise RangeError("gap", format_timestamp(start), format_timestamp(end), stream,
                                 format_timestamp(from_epoch_seconds(last)))

    def due_for_backfill(self, stream: str, start: datetime, end: datetime) -> list[Window]:
        """The windows of ``stream`` a backfill of [start, end) still has to produce: open ones first
        (claimed by a writer that is gone, or failed), then the new ones, oldest first."""
        open_rows, last_end_s = self.store.cursor(stream, until_s=int(end.timestamp()))
        last_end = from_epoch_seconds(last_end_s) if last_end_s is not None else align_up(start, self.interval(stream))
        return [row.window for row in open_rows] + due_windows(last_end, end, self.interval(stream), 10**9).produce

    def backfill(self, start: datetime, end: datetime,
                 progress: Callable[[Outcome], None] | None = None) -> list[Outcome]:
        """Every window of both streams inside [start, end), exactly as live generation would write it."""
        self.check_backfill_range(start, end)
        outcomes = self.catch_up(EVENTS, end, start_if_empty=start, limit=10**9)
        if not any(o.status == "failed" for o in outcomes):
            outcomes += self.catch_up(COMPANIES, end, start_if_empty=start, limit=10**9)
        if progress:
            for outcome in outcomes:
                progress(outcome)
        return outcomes


def make_batch(config: Config, layout: bronze.Layout, stream: str, window: Window, pool: DriverPool | None,
               fleet: FleetState | None, checkpoint: Callable[[], None] = lambda: None,
               sync: bool = False) -> Generated:
    """Generate ``window``'s batch from the roster before it (and, emulated, the fleet the previous events
    batch left) and stage its files; a pure function of these, wherever it runs (a Spark executor too)."""
    generated_at = time.time()
    made = generate_in_parts(config, stream, window, pool, fleet)
    late_count = 0
    large = made.whole is None or made.size >= bronze.DIRECT_IO_MIN_ROWS

    def fill(staging: Path) -> dict[str, bronze.FileInfo]:
        """The record file and its sidecars, written together part by part (a sidecar only when not empty)."""
        nonlocal late_count
        sidecars: dict[str, bronze.StreamWriter] = {}
        rows = {bronze.ISSUES_FILE: 0, bronze.LATE_FILE: 0}

        def side(name: str, text: Iterable[bytes | memoryview], count: int) -> None:
            for chunk in text:
                if not chunk:
                    continue
                if name not in sidecars:  # a large batch's issue log runs to tens of MB: O_DIRECT too
                    sidecars[name] = bronze.StreamWriter(staging / name, large=large,
                                                         buffer_bytes=bronze.SIDECAR_BUFFER)
                sidecars[name].write(chunk)
            if name in sidecars:
                rows[name] += count

        def lines() -> Iterator[memoryview]:
            for part in made.parts(spill_dir=staging):
                issues = (issues_ahead(part.batch, part.plan, part.offset)
                          if config.quality_injection.log_injected_issues else None)
                yield from render_records(part.batch, part.plan)
                if issues is not None:
                    side(bronze.ISSUES_FILE, issues.result(), part.plan.corrupted_count)
                if isinstance(part.batch, EventBatch):
                    late_text, late_lines = render_late(part.batch, window.end_s - window.start_s, part.offset)
                    side(bronze.LATE_FILE, (late_text,), late_lines)

        record_file = layout.record_file(stream)
        records = bronze.StreamWriter(staging / record_file, large=large)
        try:
            for chunk in record_chunks(layout.record_format, stream, lines()):
                checkpoint()
                records.write(chunk)
            # a write fails on the writer thread: it may surface only here, and then every file is let go
            files = {record_file: records.close(made.size, sync=False)}
            for name, writer in sidecars.items():
                files[name] = writer.close(rows[name], sync=False)
        except BaseException:
            for writer in (records, *sidecars.values()):
                writer.abort()
            raise
        late_count = rows[bronze.LATE_FILE]
        return files

    staged = bronze.stage_files(layout, stream, window.batch_id, fill, sync=sync)
    batch, plan = made.whole, made.plan
    companies = _roster_of(batch) if isinstance(batch, CompanyBatch) else None
    return Generated(window, generated_at, made.size, plan.corrupted_count, plan.counts(), companies, staged,
                     time.time() - generated_at, carried_of(batch) if batch is not None else None, late_count)


def batch_meta(config: Config, made: Generated, scheduled: bool, catch_up: bool) -> dict[str, Any]:
    """The meta file of a made batch (the publishing step adds files, duration and publish time)."""
    window, stream = made.window, made.staged.stream
    meta = {
        "batch_id": window.batch_id, "stream": stream,
        "interval_start": format_timestamp(window.start), "interval_end": format_timestamp(window.end),
        "record_count": made.record_count, "valid_count": made.record_count - made.corrupted_count,
        "corrupted_count": made.corrupted_count, "issue_counts": made.issue_counts,
        "seed": config.seed, "generation_mode": config.generation_mode,
        "interval": format_duration(window.length),
        "generated_at": format_timestamp(datetime.fromtimestamp(made.generated_at, UTC)),
        "scheduled_at": format_timestamp(window.end) if scheduled else None,
        "catch_up": catch_up,
        "schema_version": bronze.SCHEMA_VERSION,
    }
    if stream == EVENTS:  # a valid event_timestamp lies in [accepts_from, interval_end)
        max_delay = timedelta(seconds=max_delay_s(config))
        meta.update({"late_count": made.late_count,
                     "max_delay": format_duration(max_delay) if max_delay else "PT0S",
                     "accepts_from": format_timestamp(window.start - max_delay)})
    return meta


def carried_of(batch: ColumnBatch) -> dict[str, Any] | None:
    """The state an events batch hands the next one, as the store keeps it (None: nothing to hand on)."""
    if isinstance(batch, EventBatch) and batch.carried is not None:
        return {"fleet": batch.carried.to_json()}
    return None


def _roster_of(batch: CompanyBatch) -> NewCompanies:
    """The companies a batch onboards: its distinct records, with their true (pre-defect) values."""
    rows = batch.distinct_rows()
    names = batch.company_names()
    ids = r.uuid_text(batch.company_uuid[rows])  # canonical text, as str(uuid.UUID(bytes=...)), column-wise
    return NewCompanies(
        company_ids=ids.view("S36").ravel().astype(str).tolist(),
        names=[names[i] for i in rows.tolist()],
        geography=np.asarray(GEOGRAPHIES, object)[batch.geography[rows]].tolist(),
        active=batch.active[rows].astype(bool).tolist(),
        drivers_count=batch.drivers_count[rows].astype(np.int64).tolist(),
        onboarded_at_ms=batch.onboarded_ms[rows].astype(np.int64).tolist(),
    )


def describe_dataset(config: Config) -> str:
    snapshot = yaml.safe_dump(config.snapshot(), sort_keys=False)
    hive = config.output.layout == "hive"
    folder = "date=<YYYY-MM-DD>/hour=<HH>/batch_id=<batch_id>" if hive else "<batch_id>"
    glob = "*/*/*" if hive else "*"
    ext = config.output.format
    parquet_note = ("\n- Parquet record files: the shipped schema's columns, timestamps as text (a malformed-timestamp "
                    "defect must stay representable); a removed field and a null are both null there"
                    if ext == "parquet" else "")
    return f"""# fleetgen dataset

Synthetic fleet-telematics data written by fleetgen. Every batch is a pure function of the
seed, the stream, the window, the roster before the window and this configuration.

- seed: {config.seed}
- generation mode at creation: {config.generation_mode}
- company interval: {format_duration(config.active_company_interval)}
- driver interval: {format_duration(config.active_driver_interval)}

## Layout ({config.output.layout})

- `raw/companies/{folder}/companies.{ext}`, `raw/events/{folder}/events.{ext}`: records{parquet_note}
- `raw/<stream>/{folder}/_batch_meta.json`: counts, window, checksums
- `raw/<stream>/{folder}/_issues.ndjson`: injected defects, when any (JSON Lines)
- only the record files end in `.{ext}` without a leading `_`: `raw/events/{glob}/*.{ext}` reads records only
- `raw/<stream>/{folder}/_SUCCESS`: written last; a batch without it is not complete
- `batch_id` is the window start in UTC, `YYYYMMDDTHHMMSSZ`
- `manifests/schemas/`: the record schemas for JSON Schema, Spark, DuckDB, Polars and Arrow

## Configuration snapshot

```yaml
{snapshot}```
"""
