"""Defective values, rendered column-wise: what quality injection writes instead of the truth."""

from __future__ import annotations

import numpy as np

from app.core.generation import render as r
from app.core.timeline import Window

DAY_MS = 86_400_000


def malformed_timestamps(ms: np.ndarray, rng: np.random.Generator) -> r.Matrix:
    """Each row one of several common wrong timestamp shapes, chosen at random."""
    rows = len(ms)
    p = r.timestamp_parts(ms)
    def lit(b: bytes) -> r.Matrix:
        return r.literal(b, rows)

    z = r.zero_padded
    date_slash = [z(p["year"], 4), lit(b"/"), z(p["month"], 2), lit(b"/"), z(p["day"], 2)]
    clock = [z(p["hour"], 2), lit(b":"), z(p["minute"], 2), lit(b":"), z(p["second"], 2)]
    variants = [
        r.hcat([*date_slash, lit(b" "), *clock]),  # 2026/11/25 20:00:00
        r.hcat([z(p["day"], 2), lit(b"-"), z(p["month"], 2), lit(b"-"), z(p["year"], 4), lit(b" "), *clock]),
        r.integer(ms, 16),  # epoch milliseconds as text
        r.hcat([z(p["year"], 4), lit(b"-"), z(p["month"], 2), lit(b"-"), z(p["day"], 2), lit(b"T"),
                *clock, lit(b"."), z(p["millis"], 3)]),  # no zone designator
        r.hcat([z(p["year"], 4), lit(b"-13-32T"), *clock, lit(b"Z")]),  # impossible date
    ]
    width = max(v.shape[1] for v in variants)
    stacked = np.stack([r.widen(v, width) for v in variants])
    choice = rng.integers(0, len(variants), rows)
    return r.quoted(stacked[choice, np.arange(rows)])


def outside_window(window: Window, rows: int, rng: np.random.Generator, earliest_ms: int | None = None) -> np.ndarray:
    """Epoch milliseconds up to a day before the batch's earliest valid instant (its window start, or
    earlier when it may hold late arrivals) or at/after the window's end."""
    before = rng.random(rows) < 0.5
    offset = rng.integers(1, DAY_MS, rows, dtype=np.int64)
    start_ms = window.start_s * 1000 if earliest_ms is None else earliest_ms
    return np.where(before, start_ms - offset, window.end_s * 1000 + offset - 1)
