"""Running counters per stream, kept in memory so health answers without scanning anything.

Batches change the counters about twice a second; health, metrics and the dashboard read them
hundreds of times a second from many request threads. So every change publishes a new immutable
view (one reference swap) and readers never take a lock: only the time-dependent fields (idle
seconds, batches in the last minute) are computed per read, in O(log n).
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from app.core.config import DEFECT_TYPES
from app.core.timeline import format_timestamp, from_epoch_seconds, iso_or_none
from app.service.pipeline import Outcome
from app.store import Store

RECENT_POINTS = 120
RATE_WINDOW_S = 60.0
LATENESS_SAMPLES = 1000  # on-cadence windows the lateness percentiles are taken over
LATE_MS = 1000.0  # an on-cadence window published more than this after its window closed is late


@dataclass
class StreamStats:
    """A stream's mutable counters; only the writers (under ``ServiceStats``' lock) touch them."""

    committed: int = 0
    failed: int = 0
    skipped: int = 0
    records: int = 0
    corrupted: int = 0
    by_type: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DEFECT_TYPES, 0))
    last_batch_time: float | None = None
    last_interval_end: int | None = None
    last_error: str | None = None
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT_POINTS))
    commit_times: deque[float] = field(default_factory=deque)  # monotonic seconds of recent commits
    last_outcome: str | None = None  # committed | failed | skipped: the latest window's
    last_failed_batch: str | None = None
    lateness_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENESS_SAMPLES))
    late: int = 0  # since the service started, like catch_up
    catch_up: int = 0
    accounted_end: int | None = None  # end of the latest window committed or skipped (epoch s)

    def take_counter(self, counter: dict[str, Any]) -> bool:
        """Take the totals of the stream's counter row in the store; False when they were already these."""
        totals = (counter.get("committed_batches", 0), counter.get("skipped_ranges", 0),
                  counter.get("records", 0), counter.get("corrupted", 0))
        if totals == (self.committed, self.skipped, self.records, self.corrupted):
            return False
        self.committed, self.skipped, self.records, self.corrupted = totals
        self.by_type = {**dict.fromkeys(DEFECT_TYPES, 0), **counter.get("issue_counts", {})}
        self.last_batch_time = counter.get("last_finished_at")
        self.last_interval_end = counter.get("last_interval_end")
        return True

    def view(self, monotonic_now: float) -> StreamView:
        while self.commit_times and monotonic_now - self.commit_times[0] > RATE_WINDOW_S:
            self.commit_times.popleft()
        delays = [p["firing_delay_ms"] for p in self.recent if p["firing_delay_ms"] is not None]
        fixed: dict[str, Any] = {
            "total_batches": self.committed,
            "failed_batches": self.failed,
            "skipped_windows": self.skipped,
            "total_records": self.records,
            "corrupted_records": self.corrupted,
            "last_batch_time": (format_timestamp(datetime.fromtimestamp(self.last_batch_time, UTC))
                                if self.last_batch_time else None),
            "idle_seconds": None,
            "last_interval_end": (format_timestamp(from_epoch_seconds(self.last_interval_end))
                                  if self.last_interval_end is not None else None),
            "last_firing_delay_ms": delays[-1] if delays else None,
            "max_firing_delay_ms": max(delays) if delays else None,
            "batches_per_minute": 0,
            "last_error": self.last_error,
            "last_outcome": self.last_outcome,
            "last_failed_batch": self.last_failed_batch,
            "last_interval_end_s": max(self.accounted_end or 0, self.last_interval_end or 0) or None,
            "lateness_ms": lateness_summary(self.lateness_ms),
            "late_windows": self.late,
            "catch_up_windows": self.catch_up,
        }
        return StreamView(fixed, self.last_batch_time, tuple(self.commit_times), tuple(self.recent),
                          MappingProxyType(dict(self.by_type)))


@dataclass(frozen=True)
class StreamView:
    """What readers see of a stream, fixed at its last change."""

    fixed: dict[str, Any]
    last_batch_time: float | None
    commit_times: tuple[float, ...]
    recent: tuple[dict[str, Any], ...]
    by_type: MappingProxyType[str, int]

    def batches_per_minute(self, monotonic_now: float) -> int:
        return len(self.commit_times) - bisect_left(self.commit_times, monotonic_now - RATE_WINDOW_S)

    def as_dict(self, now: float, monotonic_now: float) -> dict[str, Any]:
        entry = dict(self.fixed)
        if self.last_batch_time:
            entry["idle_seconds"] = round(now - self.last_batch_time, 3)
        entry["batches_per_minute"] = self.batches_per_minute(monotonic_now)
        return entry


class ServiceStats:
    def __init__(self, store: Store, monotonic: Callable[[], float] = time.monotonic):
        self._lock = threading.Lock()  # serialises writers; readers use the published views
        self._monotonic = monotonic
        self._streams: dict[str, StreamStats] = {}
        self._views: dict[str, StreamView] = {}
        self._quality: dict[str, Any] = {}
        self.reload(store)

    def reload(self, store: Store) -> None:
        """Seed the counters from the ledger (at start and after clean)."""
        fresh = {"companies": StreamStats(), "events": StreamStats()}
        counters = store.counters()
        for stream, stats in fresh.items():
            stats.take_counter(counters.get(stream, {}))
            stats.failed = store.failed_count(stream)
            for row in reversed(store.recent_batches(stream, 60)):
                if row.status == "committed":
                    stats.recent.append(_point(row.stream, row.batch_id, row.record_count, row.corrupted_count,
                                               row.firing_delay_s, row.finished_at, row.duration_s,
                                               row.lateness_ms, row.catch_up))
                    if not row.catch_up and row.lateness_ms is not None:
                        stats.lateness_ms.append(row.lateness_ms)
            stats.accounted_end = store.ledger_end(stream)
        with self._lock:
            self._streams = fresh
            self._publish()

    def record(self, outcome: Outcome) -> dict[str, Any] | None:
        now = time.time()
        point = None
        with self._lock:
            stats = self._streams[outcome.stream]
            if outcome.status in ("committed", "failed", "skipped"):
                stats.last_outcome = outcome.status
            if outcome.status in ("committed", "skipped"):
                stats.accounted_end = max(stats.accounted_end or 0, outcome.window.end_s)
            if outcome.status == "committed":
                stats.committed += 1
                if outcome.catch_up:
                    stats.catch_up += 1
                elif outcome.lateness_ms is not None:
                    stats.lateness_ms.append(outcome.lateness_ms)
                    stats.late += outcome.lateness_ms > LATE_MS
                stats.records += outcome.record_count
                stats.corrupted += outcome.corrupted_count
                for key, value in outcome.issue_counts.items():
                    stats.by_type[key] = stats.by_type.get(key, 0) + value
                stats.last_batch_time = now
                stats.last_interval_end = outcome.window.end_s
                stats.last_error = None
                stats.commit_times.append(self._monotonic())
                point = _point(outcome.stream, outcome.window.batch_id, outcome.record_count,
                               outcome.corrupted_count, outcome.firing_delay_s, now, outcome.duration_s,
                               outcome.lateness_ms, outcome.catch_up)
                stats.recent.append(point)
            elif outcome.status == "failed":
                stats.failed += 1
                stats.last_error = outcome.reason
                stats.last_failed_batch = outcome.window.batch_id
            elif outcome.status == "skipped":
                stats.skipped += 1
            else:
                return None
            self._publish()
        return point

    def sync(self, stream: str, counter: dict[str, Any]) -> None:
        """Take a stream's totals from its counter row in the store, when they differ."""
        with self._lock:
            if self._streams[stream].take_counter(counter):
                self._publish()

    def note_error(self, stream: str, message: str) -> None:
        with self._lock:
            self._streams[stream].last_error = message
            self._publish()

    def _publish(self) -> None:
        """Build the readers' views from the counters (caller holds the lock)."""
        monotonic_now = self._monotonic()
        views = {stream: stats.view(monotonic_now) for stream, stats in self._streams.items()}
        records = sum(s.records for s in self._streams.values())
        corrupted = sum(s.corrupted for s in self._streams.values())
        by_type = {t: sum(s.by_type.get(t, 0) for s in self._streams.values()) for t in DEFECT_TYPES}
        self._quality = {
            "records": records, "corrupted_records": corrupted,
            "defect_percent": round(100 * corrupted / records, 3) if records else 0.0,
            "by_type": by_type,
            "by_type_percent": {t: round(100 * n / records, 3) if records else 0.0 for t, n in by_type.items()},
        }
        self._views = views

    # ---- readers (no lock: each reads one published reference) --------------------------------

    def snapshot(self) -> dict[str, dict[str, Any]]:
        views = self._views
        now, monotonic_now = time.time(), self._monotonic()
        return {stream: view.as_dict(now, monotonic_now) for stream, view in views.items()}

    def batches_per_minute(self, stream: str) -> int:
        return self._views[stream].batches_per_minute(self._monotonic())

    def defects_by_type(self) -> dict[str, MappingProxyType[str, int]]:
        return {stream: view.by_type for stream, view in self._views.items()}

    def recent_points(self) -> dict[str, list[dict[str, Any]]]:
        return {stream: list(view.recent) for stream, view in self._views.items()}

    def quality(self) -> dict[str, Any]:
        """Totals over both streams (a shared, read-only dict: copy it before changing it)."""
        return self._quality


def lateness_summary(samples: deque[float] | list[float]) -> dict[str, float | int | None]:
    """p50 / p99 / max of on-cadence publish lateness (ms), nearest-rank, over the samples kept."""
    ordered = sorted(samples)
    if not ordered:
        return {"samples": 0, "p50": None, "p99": None, "max": None}

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]

    return {"samples": len(ordered), "p50": round(rank(0.50), 3), "p99": round(rank(0.99), 3),
            "max": round(ordered[-1], 3)}


def _point(stream: str, batch_id: str, records: int, corrupted: int, delay_s: float | None, finished: float | None,
           duration: float | None, lateness_ms: float | None = None, catch_up: bool | None = None) -> dict[str, Any]:
    return {"stream": stream, "batch_id": batch_id, "records": records, "corrupted": corrupted,
            "firing_delay_ms": round(delay_s * 1000, 3) if delay_s is not None else None,
            "finished_at": iso_or_none(finished), "duration_ms": round((duration or 0) * 1000, 3),
            "lateness_ms": lateness_ms, "catch_up": catch_up}
