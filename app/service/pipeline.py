"""Claim → generate → publish → commit, for one window or every due window of a stream."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from app.core import bronze
from app.core.config import GEOGRAPHIES, Config, format_duration
from app.core.errors import Abandoned, FleetgenError, RangeError, StoreError
from app.core.generation.batch import generate_batch
from app.core.generation.companies import CompanyBatch
from app.core.generation.encoding import render_issues, render_records
from app.core.timeline import Window, align_up, due_windows, format_timestamp, from_epoch_seconds
from app.store import Store
from app.store.roster import NewCompanies, RosterRows
from app.store.store import CommitStats, LedgerRow

log = logging.getLogger(__name__)

COMPANIES, EVENTS = "companies", "events"
STREAMS = (COMPANIES, EVENTS)


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

    def as_dict(self) -> dict[str, Any]:
        return {"stream": self.stream, "batch_id": self.window.batch_id, "status": self.status,
                "interval_start": format_timestamp(self.window.start),
                "interval_end": format_timestamp(self.window.end),
                "record_count": self.record_count, "corrupted_count": self.corrupted_count,
                "issue_counts": self.issue_counts, "duration_s": round(self.duration_s, 6),
                "firing_delay_s": self.firing_delay_s, "reason": self.reason}


class Pipeline:
    """Produces windows for both streams through the ledger; safe to call from several threads."""

    def __init__(self, config: Config, store: Store, on_outcome: Callable[[Outcome], None] | None = None,
                 log_fields: Callable[[str], dict[str, Any]] | None = None):
        self.config = config
        self.store = store
        self.layout = bronze.Layout(config.output.data_dir, config.output.format)
        self.on_outcome = on_outcome
        self.log_fields = log_fields
        self.abandon = threading.Event()  # set at shutdown: in-flight batches are dropped, not published
        self._roster: RosterRows | None = None
        self._locks = {COMPANIES: threading.RLock(), EVENTS: threading.RLock()}

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

    # ---- wake-ups -----------------------------------------------------------------------------

    def catch_up(
        self,
        stream: str,
        now: datetime,
        *,
        start_if_empty: datetime | None = None,
        limit: int | None = None,
        skip_reason: str | None = None,
        firing: tuple[datetime, float] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> list[Outcome]:
        """Account for every closed window of ``stream`` up to ``now``, oldest first.

        Failed or half-done windows are retried first; new windows are produced (or, with
        ``skip_reason``, recorded as skipped). Stops at the first failure so order holds.
        ``firing`` is (boundary, delay) of a scheduler wake-up: the window ending at that
        boundary records it as its firing delay.
        """
        with self._locks[stream]:
            outcomes: list[Outcome] = []
            now_s = int(now.timestamp())
            open_rows, last_end_s = self.store.cursor(stream, until_s=now_s)
            for row in [] if skip_reason else open_rows:
                if should_stop():
                    return outcomes
                outcome = self._produce_or_skip(stream, row.window, skip_reason, firing, limit)
                outcomes.append(outcome)
                if outcome.status == "failed":
                    return outcomes
            interval = self.interval(stream)  # producing open rows leaves the ledger's end where it was
            last_end = from_epoch_seconds(last_end_s) if last_end_s is not None else None
            if last_end is None and start_if_empty is not None:
                last_end = align_up(start_if_empty, interval)
            bound = self.config.scheduling.max_catch_up_windows if limit is None else limit
            plan = due_windows(last_end, now, interval, bound)
            for window, reason in plan.skipped:
                if self.store.skip(stream, window, reason):
                    log.warning("windows skipped", extra={"fields": {
                        "stream": stream, "from": format_timestamp(window.start),
                        "to": format_timestamp(window.end), "reason": reason}})
                    outcome = Outcome(stream, window, "skipped", reason=reason)
                    outcomes.append(outcome)
                    self._report(outcome)
            if len(plan.produce) > 1:
                log.info("catching up", extra={"fields": {"stream": stream, "windows": len(plan.produce),
                                                          "from": plan.produce[0].batch_id,
                                                          "to": plan.produce[-1].batch_id}})
            for index, window in enumerate(plan.produce):
                if skip_reason is None and should_stop():
                    break
                outcome = self._produce_or_skip(stream, window, skip_reason, firing, limit)
                outcomes.append(outcome)
                if outcome.status == "failed":
                    break
                if len(plan.produce) > 100 and (index + 1) % 100 == 0:
                    log.info("catch-up progress", extra={"fields": {
                        "stream": stream, "done": index + 1, "total": len(plan.produce)}})
            return outcomes

    def _produce_or_skip(self, stream: str, window: Window, skip_reason: str | None,
                         firing: tuple[datetime, float] | None, limit: int | None) -> Outcome:
        if skip_reason is not None:
            status = "skipped" if self.store.skip(stream, window, skip_reason) else "already"
            outcome = Outcome(stream, window, status, reason=skip_reason)
            if status == "skipped":
                self._report(outcome)
            return outcome
        if firing is not None and window.end == firing[0]:
            return self.produce(stream, window, scheduled_at=firing[0], firing_delay=firing[1],
                                company_limit=limit)
        return self.produce(stream, window, company_limit=limit)

    def ensure_companies_through(self, moment: datetime, limit: int | None = None) -> None:
        """Account for every company window closing at or before ``moment`` (a driver batch's roster),
        under the same catch-up bound as the driver stream."""
        outcomes = self.catch_up(COMPANIES, moment, limit=limit)
        failed = [o for o in outcomes if o.status == "failed"]
        if failed:
            raise FleetgenError(f"company window {failed[0].window.batch_id} failed: {failed[0].reason}")

    # ---- one window ---------------------------------------------------------------------------

    def produce(self, stream: str, window: Window, scheduled_at: datetime | None = None,
                firing_delay: float | None = None, company_limit: int | None = None) -> Outcome:
        with self._locks[stream]:
            try:
                if stream == EVENTS:
                    self.ensure_companies_through(window.start, company_limit)
                row = self.store.claim(stream, window, scheduled_at.timestamp() if scheduled_at else None)
            except FleetgenError as exc:
                outcome = self._failed_before_claim(stream, window, str(exc))
                self._report(outcome)
                return outcome
            if row is None:
                return Outcome(stream, window, "already")
            started = time.time()
            delay = firing_delay
            try:
                outcome = self._generate_and_publish(stream, window, row, started, delay)
            except Exception as exc:  # noqa: BLE001 - recorded in the ledger and retried
                message = f"{type(exc).__name__}: {exc}"
                try:
                    self.store.fail(row, message)
                except StoreError:
                    pass  # the row stays pending: retried like a failure at the next wake-up
                abandoned = isinstance(exc, Abandoned)
                log.log(logging.INFO if abandoned else logging.ERROR,
                        "batch abandoned" if abandoned else "batch failed",
                        extra={"fields": {"stream": stream, "batch_id": window.batch_id,
                                          "attempt": row.attempts, "error": message}},
                        exc_info=not isinstance(exc, FleetgenError))
                outcome = Outcome(stream, window, "failed", reason=message, firing_delay_s=delay)
            self._report(outcome)
            return outcome

    def _failed_before_claim(self, stream: str, window: Window, message: str) -> Outcome:
        log.error("batch blocked", extra={"fields": {"stream": stream, "batch_id": window.batch_id,
                                                     "error": message}})
        return Outcome(stream, window, "failed", reason=message)

    def _generate_and_publish(self, stream: str, window: Window, row: LedgerRow, started: float,
                              delay: float | None) -> Outcome:
        roster = self.roster_before(window.start_s) if stream == EVENTS else None
        batch, plan = generate_batch(self.config, stream, window, roster)
        roster_update = _roster_of(batch) if isinstance(batch, CompanyBatch) else None
        issues = render_issues(batch, plan) if self.config.quality_injection.log_injected_issues else b""
        meta = {
            "batch_id": window.batch_id, "stream": stream,
            "interval_start": format_timestamp(window.start), "interval_end": format_timestamp(window.end),
            "record_count": batch.size, "valid_count": batch.size - plan.corrupted_count,
            "corrupted_count": plan.corrupted_count, "issue_counts": plan.counts(),
            "seed": self.config.seed, "generation_mode": self.config.generation_mode,
            "interval": format_duration(window.length),
            "generated_at": format_timestamp(datetime.fromtimestamp(started, UTC)),
            "scheduled_at": format_timestamp(window.end) if row.scheduled_at else None,
            "schema_version": bronze.SCHEMA_VERSION,
        }
        published = bronze.publish_batch(self.layout, stream, window.batch_id,
                                         render_records(batch, plan), batch.size, issues,
                                         plan.corrupted_count, meta, started, self._checkpoint)
        finished = time.time()
        stats = CommitStats(self.config.generation_mode, batch.size, batch.size - plan.corrupted_count,
                            plan.corrupted_count, plan.counts(), row.scheduled_at, started, finished, delay)
        self.store.commit(row, stats, roster_update)
        if isinstance(batch, CompanyBatch) and self._roster is not None:
            rows = batch.distinct_rows()
            self._roster.append(window.end_s, batch.company_uuid[rows], batch.geography[rows], batch.active[rows],
                                batch.drivers_count[rows])
        self.write_manifests()
        outcome = Outcome(stream, window, "committed", batch.size, plan.corrupted_count, plan.counts(),
                          finished - started, delay, adopted=published.adopted)
        log.info("batch committed", extra={"fields": {
            "mode": self.config.generation_mode, "stream": stream, "batch_id": window.batch_id,
            "records": batch.size, "corrupted": plan.corrupted_count, "duration_s": round(finished - started, 6),
            "firing_delay_s": None if delay is None else round(delay, 6), "attempt": row.attempts,
            **(self.log_fields(stream) if self.log_fields else {})}})
        return outcome

    def roster_before(self, moment_s: int):
        """The driver batch roster, from a copy of the store's roster kept in memory."""
        with self._locks[COMPANIES]:
            if self._roster is None:
                self._roster = self.store.load_roster()
            return self._roster.before(moment_s)

    def forget_roster(self) -> None:
        """After clean: the next driver batch reloads the (now empty) roster."""
        with self._locks[COMPANIES]:
            self._roster = None

    def _checkpoint(self) -> None:
        if self.abandon.is_set():
            raise Abandoned("shutdown requested before the batch became visible; it will be produced on restart")

    def _report(self, outcome: Outcome) -> None:
        if self.on_outcome is not None:
            try:
                self.on_outcome(outcome)
            except Exception:  # noqa: BLE001 - a listener must not break production
                log.exception("outcome listener failed")

    # ---- manifests and backfill ---------------------------------------------------------------

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

    def backfill(self, start: datetime, end: datetime,
                 progress: Callable[[Outcome], None] | None = None) -> list[Outcome]:
        """Every window of both streams inside [start, end), exactly as live generation would write it."""
        if end <= start:
            raise RangeError("empty", format_timestamp(start), format_timestamp(end))
        for stream in (EVENTS, COMPANIES):
            last = self.store.ledger_end(stream)
            if last is not None and from_epoch_seconds(last) < align_up(start, self.interval(stream)):
                raise RangeError("gap", format_timestamp(start), format_timestamp(end), stream,
                                 format_timestamp(from_epoch_seconds(last)))
        outcomes = self.catch_up(EVENTS, end, start_if_empty=start, limit=10**9)
        if not any(o.status == "failed" for o in outcomes):
            outcomes += self.catch_up(COMPANIES, end, start_if_empty=start, limit=10**9)
        if progress:
            for outcome in outcomes:
                progress(outcome)
        return outcomes


def _roster_of(batch: CompanyBatch) -> NewCompanies:
    """The companies a batch onboards: its distinct records, with their true (pre-defect) values."""
    rows = batch.distinct_rows()
    names = batch.company_names()
    return NewCompanies(
        company_ids=[str(uuid.UUID(bytes=bytes(batch.company_uuid[i]))) for i in rows],
        names=[names[i] for i in rows],
        geography=[GEOGRAPHIES[batch.geography[i]] for i in rows],
        active=[bool(batch.active[i]) for i in rows],
        drivers_count=[int(batch.drivers_count[i]) for i in rows],
        onboarded_at_ms=[int(batch.onboarded_ms[i]) for i in rows],
    )


def describe_dataset(config: Config) -> str:
    snapshot = yaml.safe_dump(config.snapshot(), sort_keys=False)
    return f"""# fleetgen dataset

Synthetic fleet-telematics data written by fleetgen. Every batch is a pure function of the
seed, the stream, the window, the roster before the window and this configuration.

- seed: {config.seed}
- generation mode at creation: {config.generation_mode}
- company interval: {format_duration(config.active_company_interval)}
- driver interval: {format_duration(config.active_driver_interval)}

## Layout

- `raw/companies/<batch_id>/companies.jsonl`, `raw/events/<batch_id>/events.jsonl`: records
- `raw/<stream>/<batch_id>/batch_meta.json`: counts, window, checksums
- `raw/<stream>/<batch_id>/issues.jsonl`: injected defects, when any
- `raw/<stream>/<batch_id>/_SUCCESS`: written last; a batch without it is not complete
- `batch_id` is the window start in UTC, `YYYYMMDDTHHMMSSZ`

## Configuration snapshot

```yaml
{snapshot}```
"""
