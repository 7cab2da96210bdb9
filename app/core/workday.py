"""A driver's working day in numbers: the shift and how many stops it holds (shared by the config's
checks and the itinerary model, which neither may import from the other)."""

from __future__ import annotations

from collections.abc import Sequence

SHIFT_START_MIN_H, SHIFT_START_SPAN_H = 6.0, 4.0  # local time a shift starts: 06:00-10:00
SHIFT_LENGTH_MIN_H, SHIFT_LENGTH_SPAN_H = 8.0, 2.0  # 8-10 hours
MAX_DELIVERIES = 2  # per stop
MIN_SLOT_S = 2.0  # shorter slots would not keep time order and speeds at millisecond and 1e-5° resolution
DAY_S = 86_400
MEAN_SHIFT_S = (SHIFT_LENGTH_MIN_H + SHIFT_LENGTH_SPAN_H / 2) * 3600


def mean_deliveries(weights: Sequence[float]) -> float:
    """Deliveries per stop from the event-type weights (start_driving, stopped_driving, delivered): a stop
    makes one start and one stop, so ``delivered / mean(start, stop)`` keeps the delivered share."""
    legs = (weights[0] + weights[1]) / 2
    return float(min(MAX_DELIVERIES, weights[2] / legs)) if legs > 0 else 0.0


def slot_seconds(rate_per_window: float, window_s: int, deliveries: float) -> float:
    """The stop-to-stop slot that makes a day's expected events match the configured rate."""
    per_day = rate_per_window * DAY_S / window_s
    if per_day <= 0:
        return float("inf")
    return MEAN_SHIFT_S * (2 + deliveries) / per_day


def max_rate_per_window(window_s: int, deliveries: float) -> float:
    """The highest ``event_rate_per_driver`` whose slots stay at least MIN_SLOT_S long."""
    return MEAN_SHIFT_S * (2 + deliveries) / MIN_SLOT_S * window_s / DAY_S
