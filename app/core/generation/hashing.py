"""Counter-based hashing: a uniform per (key, purpose) without drawing the values before it, so any
slot of any driver's day, or any company's lifecycle, is computed alone and column-wise."""

from __future__ import annotations

import numpy as np

from app.core.generation import compiled

# What each hashed uniform is for; the numbers are part of the output (changing one changes the data).
PURPOSE = {"shift_start": 1, "shift_length": 2, "route_phase": 3, "route_radius": 4, "route_turn": 5,
           "drive": 7, "deliveries": 8, "scatter_angle": 9, "scatter_radius": 10, "late": 11, "late_window": 12,
           "tenure": 21, "change_period": 22, "change_factor": 23}


def mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wrapping arithmetic)."""
    values = np.asarray(values, np.uint64)
    if compiled.native is not None and values.ndim == 1:
        return _hashed(values, _ZERO, np.uint64)
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed: np.ndarray = z ^ (z >> np.uint64(31))
    return mixed


def uniform(keys: np.ndarray, purpose: str) -> np.ndarray:
    """A uniform in [0, 1) per key, independent for each purpose."""
    salt = mix(np.full(1, PURPOSE[purpose], np.uint64))
    if compiled.native is not None and np.ndim(keys) == 1:
        return _hashed(np.asarray(keys, np.uint64), salt, np.float64)
    bits = mix(keys ^ salt)
    out: np.ndarray = (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return out


def key(*parts: np.ndarray) -> np.ndarray:
    """Chain-hash integer columns into one uint64 key per row."""
    chained = np.zeros(len(parts[0]), np.uint64)
    for part in parts:
        if compiled.native is not None and chained.ndim == 1:
            chained = _hashed(chained, part.astype(np.uint64), np.uint64)
        else:
            chained = mix(chained ^ part.astype(np.uint64))
    return chained


def _hashed(a: np.ndarray, b: np.ndarray, dtype: type) -> np.ndarray:
    """mix(a ^ b) by the compiled kernel (one pass, no temporaries, no GIL), as uint64 or as uniforms."""
    assert compiled.native is not None
    out: np.ndarray = np.empty(len(a), dtype)
    compiled.native.hash_into(np.ascontiguousarray(a), np.ascontiguousarray(b), out, dtype is np.float64)
    return out


_ZERO = np.zeros(1, np.uint64)


def company_keys(seed: int, company_uuid: np.ndarray) -> np.ndarray:
    """A 64-bit key per company from the seed and its id."""
    low = np.ascontiguousarray(company_uuid[:, 8:16]).view(np.uint64).ravel()
    high = np.ascontiguousarray(company_uuid[:, 0:8]).view(np.uint64).ravel()
    return key(np.full(len(low), seed & 0xFFFFFFFFFFFFFFFF, np.uint64), high, low)
