"""Service counters: what health reads, published as immutable views at each change."""

from datetime import UTC, datetime

from app.core.timeline import Window
from app.service.pipeline import Outcome
from app.service.stats import ServiceStats


class FakeStore:
    def counters(self):
        return {"events": {"committed_batches": 5, "skipped_ranges": 1, "records": 50, "corrupted": 2,
                           "issue_counts": {"null_value": 2}, "last_interval_end": 1_767_225_600,
                           "last_finished_at": 1_767_225_600.5}}

    def failed_count(self, stream):
        return 0

    def recent_batches(self, stream, limit):
        return []

    def ledger_end(self, stream):
        return None


def window(second: int) -> Window:
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) + second
    return Window.from_epoch(start, start + 1)


def committed(second: int, records: int = 10, delay: float | None = 0.004, issues=None) -> Outcome:
    issues = issues or {}
    return Outcome("events", window(second), "committed", records, sum(issues.values()), issues,
                   duration_s=0.003, firing_delay_s=delay)


def test_counters_start_from_the_store_and_move_with_each_outcome():
    clock = [1000.0]
    stats = ServiceStats(FakeStore(), monotonic=lambda: clock[0])
    before = stats.snapshot()["events"]
    assert before["total_batches"] == 5 and before["total_records"] == 50 and before["skipped_windows"] == 1
    assert stats.quality()["by_type"]["null_value"] == 2

    point = stats.record(committed(0, records=12, delay=0.004, issues={"null_value": 1}))
    assert point["firing_delay_ms"] == 4.0
    stats.record(committed(1, records=8, delay=0.009))
    stats.record(committed(2, records=8, delay=None))
    stats.record(Outcome("events", window(3), "failed", reason="disk full"))
    stats.record(Outcome("events", window(4), "skipped", reason="paused"))
    after = stats.snapshot()["events"]
    assert after["total_batches"] == 8 and after["total_records"] == 78 and after["corrupted_records"] == 3
    assert after["failed_batches"] == 1 and after["skipped_windows"] == 2 and after["last_error"] == "disk full"
    assert after["last_firing_delay_ms"] == 9.0 and after["max_firing_delay_ms"] == 9.0
    quality = stats.quality()
    assert quality["records"] == 78 and quality["by_type"]["null_value"] == 3
    assert quality["defect_percent"] == round(100 * 3 / 78, 3)
    assert stats.snapshot()["companies"]["total_batches"] == 0
    assert [p["batch_id"] for p in stats.recent_points()["events"]] == [window(i).batch_id for i in range(3)]


def test_batches_per_minute_counts_commits_of_the_last_60_monotonic_seconds():
    clock = [0.0]
    stats = ServiceStats(FakeStore(), monotonic=lambda: clock[0])
    for second in range(90):
        clock[0] = float(second)
        stats.record(committed(second))
    assert stats.snapshot()["events"]["batches_per_minute"] == 61  # commits at 29..89 s, both ends included
    clock[0] = 120.0  # no commit since: the figure decays on read, without a new batch
    assert stats.snapshot()["events"]["batches_per_minute"] == 30
    clock[0] = 1000.0
    assert stats.snapshot()["events"]["batches_per_minute"] == 0


def test_a_reader_keeps_a_consistent_view_while_counters_change():
    stats = ServiceStats(FakeStore())
    held = stats.quality()
    stats.record(committed(0, records=40))
    assert held["records"] == 50  # the old view is untouched; the new one is a new object
    assert stats.quality()["records"] == 90
