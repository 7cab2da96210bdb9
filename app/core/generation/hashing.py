"""Counter-based hashing: a uniform per (key, purpose) without drawing the values before it, so any
slot of any driver's day, or any company's lifecycle, is computed alone and column-wise."""

from __future__ import annotations

import numpy as np

# What each hashed uniform is for; the numbers are part of the output (changing one changes the data).
PURPOSE = {"shift_start": 1, "shift_length": 2, "route_phase": 3, "route_radius": 4, "route_turn": 5,
           "drive": 7, "deliveries": 8, "scatter_angle": 9, "scatter_radius": 10, "late": 11, "late_window": 12,
           "tenure": 21, "change_period": 22, "change_factor": 23}


def mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wrapping arithmetic)."""
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed: np.ndarray = z ^ (z >> np.uint64(31))
    return mixed


def uniform(keys: np.ndarray, purpose: str) -> np.ndarray:
    """A uniform in [0, 1) per key, independent for each purpose."""
    bits = mix(keys ^ mix(np.full(1, PURPOSE[purpose], np.uint64)))
    out: np.ndarray = (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return out


def key(*parts: np.ndarray) -> np.ndarray:
    """Chain-hash integer columns into one uint64 key per row."""
    chained = np.zeros(len(parts[0]), np.uint64)
    for part in parts:
        chained = mix(chained ^ part.astype(np.uint64))
    return chained


def company_keys(seed: int, company_uuid: np.ndarray) -> np.ndarray:
    """A 64-bit key per company from the seed and its id."""
    low = np.ascontiguousarray(company_uuid[:, 8:16]).view(np.uint64).ravel()
    high = np.ascontiguousarray(company_uuid[:, 0:8]).view(np.uint64).ravel()
    return key(np.full(len(low), seed & 0xFFFFFFFFFFFFFFFF, np.uint64), high, low)
