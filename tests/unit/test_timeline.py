"""Pure time logic under freezegun: alignment, windows, due windows after downtime, clock trouble."""

from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from app.core.timeline import (
    Window,
    align_to_interval,
    due_windows,
    next_boundary,
    parse_timestamp,
    window_for_firing,
)
from tests.conftest import utc

TEN = timedelta(seconds=10)
QUARTER = timedelta(minutes=15)
US = timedelta(microseconds=1)


def now() -> datetime:
    return datetime.now(UTC)


@pytest.mark.parametrize("moment, interval, expected", [
    (utc(2026, 11, 25, 20, 0, 0), TEN, utc(2026, 11, 25, 20, 0, 0)),          # exactly on a boundary
    (utc(2026, 11, 25, 20, 0, 0) + US, TEN, utc(2026, 11, 25, 20, 0, 0)),     # +1 µs
    (utc(2026, 11, 25, 20, 0, 0) - US, TEN, utc(2026, 11, 25, 19, 59, 50)),   # -1 µs
    (utc(2026, 11, 25, 20, 7, 59), QUARTER, utc(2026, 11, 25, 20, 0)),
    (utc(2026, 11, 25, 20, 37), timedelta(hours=1), utc(2026, 11, 25, 20)),
    (utc(2026, 11, 25, 20, 0, 6), timedelta(seconds=7), utc(2026, 11, 25, 20, 0, 1)),  # epoch grid, not the minute
])
def test_align_to_interval(moment, interval, expected):
    with freeze_time(moment):
        assert align_to_interval(now(), interval) == expected
    assert (expected.timestamp() % interval.total_seconds()) == 0


def test_align_refuses_naive_and_sub_second():
    with pytest.raises(ValueError, match="UTC only"):
        align_to_interval(datetime(2026, 1, 1), TEN)
    with pytest.raises(ValueError, match="whole number"):
        align_to_interval(utc(2026, 1, 1), timedelta(milliseconds=500))


def test_window_a_firing_covers():
    with freeze_time("2026-11-25T20:00:00.003Z"):
        window = window_for_firing(now(), TEN)
    assert window == Window(utc(2026, 11, 25, 19, 59, 50), utc(2026, 11, 25, 20, 0, 0))
    assert window.batch_id == "20261125T195950Z"
    with freeze_time("2026-11-25T20:00:00Z"):
        assert window_for_firing(now(), TEN).end == utc(2026, 11, 25, 20)
        assert next_boundary(now(), TEN) == utc(2026, 11, 25, 20, 0, 10)


def test_empty_ledger_due_is_the_latest_closed_window():
    with freeze_time("2026-11-25T20:00:07Z"):
        plan = due_windows(None, now(), TEN, 100)
    assert plan.produce == [Window(utc(2026, 11, 25, 19, 59, 50), utc(2026, 11, 25, 20))]
    assert plan.skipped == []


def test_due_windows_after_downtime_in_order():
    with freeze_time("2026-11-25T20:00:00Z") as frozen:
        last_end = utc(2026, 11, 25, 20)
        assert due_windows(last_end, now(), TEN, 100).produce == []
        frozen.tick(timedelta(seconds=9.999))
        assert due_windows(last_end, now(), TEN, 100).produce == []
        frozen.tick(timedelta(milliseconds=1))
        assert [w.start for w in due_windows(last_end, now(), TEN, 100).produce] == [utc(2026, 11, 25, 20)]
        frozen.move_to("2026-11-25T20:05:03Z")  # five minutes down
        plan = due_windows(last_end, now(), TEN, 100)
    assert len(plan.produce) == 30 and plan.skipped == []
    assert all(a.end == b.start for a, b in zip(plan.produce, plan.produce[1:], strict=False))
    assert plan.produce[-1].end == utc(2026, 11, 25, 20, 5)


def test_catch_up_bound_records_the_rest_as_skipped():
    with freeze_time("2026-12-25T20:00:00Z"):  # 30 days of 15-minute windows missed
        plan = due_windows(utc(2026, 11, 25, 20), now(), QUARTER, 96)
    assert len(plan.produce) == 96
    assert plan.produce[0].start == utc(2026, 12, 24, 20)
    assert plan.skipped == [(Window(utc(2026, 11, 25, 20), utc(2026, 12, 24, 20)), "catch_up_limit")]
    covered = sum((w.length for w, _ in plan.skipped), timedelta()) + 96 * QUARTER
    assert covered == timedelta(days=30)  # nothing lost silently


def test_clock_going_backwards_produces_nothing():
    with freeze_time("2026-11-25T19:58:00Z"):
        assert due_windows(utc(2026, 11, 25, 20), now(), TEN, 100).produce == []


def test_interval_change_between_runs():
    # the ledger ended on a 10 s boundary that is not a 15 min boundary
    last_end = utc(2026, 11, 25, 20, 3, 20)
    with freeze_time("2026-11-25T20:31:00Z"):
        plan = due_windows(last_end, now(), QUARTER, 100)
    assert plan.skipped == [(Window(last_end, utc(2026, 11, 25, 20, 15)), "interval_changed")]
    assert plan.produce == [Window(utc(2026, 11, 25, 20, 15), utc(2026, 11, 25, 20, 30))]
    with freeze_time("2026-11-25T20:10:00Z"):  # the first new boundary has not passed yet
        assert due_windows(last_end, now(), QUARTER, 100).produce == []


def test_parse_timestamp_forms():
    assert parse_timestamp("2026-11-25T20:00:00Z") == utc(2026, 11, 25, 20)
    assert parse_timestamp("2026-11-25T21:00:00+01:00") == utc(2026, 11, 25, 20)
    assert parse_timestamp("2026-11-25 20:00") == utc(2026, 11, 25, 20)
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")
