"""Defective values, rendered column-wise: what quality injection writes instead of the truth."""

from __future__ import annotations

import numpy as np

from app.core.generation import render as r
from app.core.timeline import Window

DAY_MS = 86_400_000


MALFORMED_SHAPES = 5


def malformed_timestamps(ms: np.ndarray, rng: np.random.Generator) -> r.Matrix:
    """Each row one of several common wrong timestamp shapes, chosen at random (each row rendered in its
    own shape only)."""
    choice = rng.integers(0, MALFORMED_SHAPES, len(ms))
    shaped = [np.flatnonzero(choice == shape) for shape in range(MALFORMED_SHAPES)]
    parts = [_malformed_shape(shape, ms[rows]) for shape, rows in enumerate(shaped)]
    out = np.zeros((len(ms), max(part.shape[1] for part in parts)), np.uint8)
    for rows, part in zip(shaped, parts, strict=True):
        out[rows, :part.shape[1]] = part
    return r.quoted(out)


def _malformed_shape(shape: int, ms: np.ndarray) -> r.Matrix:
    rows = len(ms)
    if shape == 2:
        return r.integer(ms, 16)  # epoch milliseconds as text
    p = r.timestamp_parts(ms)

    def lit(b: bytes) -> r.Matrix:
        return r.literal(b, rows)

    z = r.zero_padded
    clock = [z(p["hour"], 2), lit(b":"), z(p["minute"], 2), lit(b":"), z(p["second"], 2)]
    if shape == 0:  # 2026/11/25 20:00:00
        return r.hcat([z(p["year"], 4), lit(b"/"), z(p["month"], 2), lit(b"/"), z(p["day"], 2), lit(b" "), *clock])
    if shape == 1:  # 25-11-2026 20:00:00
        return r.hcat([z(p["day"], 2), lit(b"-"), z(p["month"], 2), lit(b"-"), z(p["year"], 4), lit(b" "), *clock])
    if shape == 3:  # no zone designator
        return r.hcat([z(p["year"], 4), lit(b"-"), z(p["month"], 2), lit(b"-"), z(p["day"], 2), lit(b"T"),
                       *clock, lit(b"."), z(p["millis"], 3)])
    return r.hcat([z(p["year"], 4), lit(b"-13-32T"), *clock, lit(b"Z")])  # impossible date


def outside_window(window: Window, rows: int, rng: np.random.Generator, earliest_ms: int | None = None) -> np.ndarray:
    """Epoch milliseconds up to a day before the batch's earliest valid instant (its window start, or
    earlier when it may hold late arrivals) or at/after the window's end."""
    before = rng.random(rows) < 0.5
    offset = rng.integers(1, DAY_MS, rows, dtype=np.int64)
    start_ms = window.start_s * 1000 if earliest_ms is None else earliest_ms
    return np.where(before, start_ms - offset, window.end_s * 1000 + offset - 1)
