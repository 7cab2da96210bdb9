"""Interval alignment and due-window computation: pure functions of the time they are given."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BATCH_ID_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, order=True)
class Window:
    """A half-open interval [start, end) of UTC time, whole seconds."""

    start: datetime
    end: datetime

    @property
    def batch_id(self) -> str:
        return self.start.strftime(BATCH_ID_FORMAT)

    @property
    def start_s(self) -> int:
        return to_epoch_seconds(self.start)

    @property
    def end_s(self) -> int:
        return to_epoch_seconds(self.end)

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    @classmethod
    def from_epoch(cls, start_s: int, end_s: int) -> Window:
        return cls(from_epoch_seconds(start_s), from_epoch_seconds(end_s))


@dataclass(frozen=True)
class DuePlan:
    """What a wake-up must do: windows to produce in order, and ranges to record as skipped."""

    produce: list[Window]
    skipped: list[tuple[Window, str]]


def to_epoch_seconds(moment: datetime) -> int:
    return (_as_utc(moment) - EPOCH) // timedelta(seconds=1)


def from_epoch_seconds(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def iso_or_none(epoch_s: float | None) -> str | None:
    """An epoch-seconds moment as ISO 8601 UTC with milliseconds and Z (None stays None)."""
    return None if epoch_s is None else format_timestamp(EPOCH + timedelta(seconds=epoch_s))


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: fleetgen works in UTC only")
    return moment.astimezone(UTC)


def align_to_interval(moment: datetime, interval: timedelta) -> datetime:
    """The latest epoch multiple of ``interval`` at or before ``moment``."""
    step = _whole_seconds(interval)
    elapsed = _as_utc(moment) - EPOCH
    return EPOCH + (elapsed // step) * step


def align_up(moment: datetime, interval: timedelta) -> datetime:
    """The earliest epoch multiple of ``interval`` at or after ``moment``."""
    floor = align_to_interval(moment, interval)
    return floor if floor == _as_utc(moment) else floor + _whole_seconds(interval)


def window_for_firing(boundary: datetime, interval: timedelta) -> Window:
    """The window a firing at ``boundary`` produces: [T - interval, T) with T aligned."""
    end = align_to_interval(boundary, interval)
    return Window(end - _whole_seconds(interval), end)


def next_boundary(now: datetime, interval: timedelta) -> datetime:
    """The first boundary strictly after ``now``."""
    return align_to_interval(now, interval) + _whole_seconds(interval)


def windows_between(start: datetime, end: datetime, interval: timedelta) -> list[Window]:
    """Consecutive aligned windows covering [start, end); both ends must be aligned."""
    step = _whole_seconds(interval)
    windows = []
    cursor = start
    while cursor + step <= end:
        windows.append(Window(cursor, cursor + step))
        cursor += step
    return windows


def due_windows(
    last_end: datetime | None,
    now: datetime,
    interval: timedelta,
    max_windows: int,
) -> DuePlan:
    """Closed windows not yet accounted for, oldest first, bounded to the newest ``max_windows``.

    ``last_end`` is the end of the latest window the ledger accounts for (None when empty:
    then only the latest closed window is due). Windows beyond the bound, and the gap left
    by an interval change, come back as skipped ranges with a reason so nothing is lost
    silently. A clock that went backwards (now before ``last_end``) yields nothing.
    """
    step = _whole_seconds(interval)
    closed_until = align_to_interval(now, interval)
    if last_end is None:
        return DuePlan([Window(closed_until - step, closed_until)], [])
    skipped: list[tuple[Window, str]] = []
    first_start = align_up(last_end, interval)
    if first_start > closed_until:
        return DuePlan([], [])
    if first_start > last_end:
        skipped.append((Window(last_end, first_start), "interval_changed"))
    windows_due = max(0, (closed_until - first_start) // step)
    if windows_due > max_windows:
        keep_from = closed_until - max_windows * step
        skipped.append((Window(first_start, keep_from), "catch_up_limit"))
        first_start = keep_from
    produce = windows_between(first_start, closed_until, interval)
    return DuePlan(produce, skipped)


def _whole_seconds(interval: timedelta) -> timedelta:
    if interval < timedelta(seconds=1) or interval.microseconds:
        raise ValueError(f"interval {interval} must be a whole number of seconds >= 1")
    return interval


def format_timestamp(moment: datetime) -> str:
    """UTC ISO 8601 with millisecond precision and a Z suffix."""
    return _as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 timestamp; naive values are taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
