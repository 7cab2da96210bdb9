"""Running counters per stream, kept in memory so health answers without scanning anything."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.config import DEFECT_TYPES
from app.pipeline import Outcome
from app.store import Store
from app.timeline import format_timestamp, from_epoch_seconds


@dataclass
class StreamStats:
    committed: int = 0
    failed: int = 0
    skipped: int = 0
    records: int = 0
    corrupted: int = 0
    by_type: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DEFECT_TYPES, 0))
    last_batch_time: float | None = None
    last_interval_end: int | None = None
    last_error: str | None = None
    recent: deque = field(default_factory=lambda: deque(maxlen=120))
    commit_times: deque = field(default_factory=lambda: deque(maxlen=1000))

    def as_dict(self, now: float) -> dict[str, Any]:
        delays = [o["firing_delay_ms"] for o in self.recent if o.get("firing_delay_ms") is not None]
        last_minute = sum(1 for t in self.commit_times if now - t <= 60)
        return {
            "total_batches": self.committed,
            "failed_batches": self.failed,
            "skipped_windows": self.skipped,
            "total_records": self.records,
            "corrupted_records": self.corrupted,
            "last_batch_time": (format_timestamp(datetime.fromtimestamp(self.last_batch_time, UTC))
                                if self.last_batch_time else None),
            "idle_seconds": round(now - self.last_batch_time, 3) if self.last_batch_time else None,
            "last_interval_end": (format_timestamp(from_epoch_seconds(self.last_interval_end))
                                  if self.last_interval_end is not None else None),
            "last_firing_delay_ms": delays[-1] if delays else None,
            "max_firing_delay_ms": max(delays) if delays else None,
            "batches_per_minute": last_minute,
            "last_error": self.last_error,
        }


class ServiceStats:
    def __init__(self, store: Store):
        self._lock = threading.Lock()
        self.streams: dict[str, StreamStats] = {}
        self.reload(store)

    def reload(self, store: Store) -> None:
        """Seed the counters from the ledger (at start and after clean)."""
        fresh = {"companies": StreamStats(), "events": StreamStats()}
        counters = store.counters()
        for stream, stats in fresh.items():
            counter = counters.get(stream, {})
            stats.committed = counter.get("committed_batches", 0)
            stats.skipped = counter.get("skipped_ranges", 0)
            stats.records = counter.get("records", 0)
            stats.corrupted = counter.get("corrupted", 0)
            stats.by_type.update(counter.get("issue_counts", {}))
            stats.last_batch_time = counter.get("last_finished_at")
            stats.last_interval_end = counter.get("last_interval_end")
            stats.failed = store.failed_count(stream)
            for row in reversed(store.recent_batches(stream, 60)):
                if row.status == "committed":
                    stats.recent.append(_point(row.stream, row.batch_id, row.record_count, row.corrupted_count,
                                               row.firing_delay_s, row.finished_at, row.duration_s))
        with self._lock:
            self.streams = fresh

    def record(self, outcome: Outcome) -> dict[str, Any] | None:
        now = time.time()
        with self._lock:
            stats = self.streams[outcome.stream]
            if outcome.status == "committed":
                stats.committed += 1
                stats.records += outcome.record_count
                stats.corrupted += outcome.corrupted_count
                for key, value in outcome.issue_counts.items():
                    stats.by_type[key] = stats.by_type.get(key, 0) + value
                stats.last_batch_time = now
                stats.last_interval_end = outcome.window.end_s
                stats.last_error = None
                stats.commit_times.append(now)
                point = _point(outcome.stream, outcome.window.batch_id, outcome.record_count,
                               outcome.corrupted_count, outcome.firing_delay_s, now, outcome.duration_s)
                stats.recent.append(point)
                return point
            if outcome.status == "failed":
                stats.failed += 1
                stats.last_error = outcome.reason
            elif outcome.status == "skipped":
                stats.skipped += 1
        return None

    def note_error(self, stream: str, message: str) -> None:
        with self._lock:
            self.streams[stream].last_error = message

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = time.time()
        with self._lock:
            return {stream: stats.as_dict(now) for stream, stats in self.streams.items()}

    def recent_points(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {stream: list(stats.recent) for stream, stats in self.streams.items()}

    def quality(self) -> dict[str, Any]:
        with self._lock:
            records = sum(s.records for s in self.streams.values())
            corrupted = sum(s.corrupted for s in self.streams.values())
            by_type = {t: sum(s.by_type.get(t, 0) for s in self.streams.values()) for t in DEFECT_TYPES}
        return {"records": records, "corrupted_records": corrupted,
                "defect_percent": round(100 * corrupted / records, 3) if records else 0.0,
                "by_type": by_type,
                "by_type_percent": {t: round(100 * n / records, 3) if records else 0.0 for t, n in by_type.items()}}


def _point(stream, batch_id, records, corrupted, delay_s, finished, duration) -> dict[str, Any]:
    return {"stream": stream, "batch_id": batch_id, "records": records, "corrupted": corrupted,
            "firing_delay_ms": round(delay_s * 1000, 3) if delay_s is not None else None,
            "finished_at": finished, "duration_ms": round((duration or 0) * 1000, 3)}
